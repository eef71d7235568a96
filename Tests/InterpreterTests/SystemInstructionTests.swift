import TestHostSupport
import Testing
import VMM

@testable import Interpreter

/// System instructions the interpreter answers itself, checked by what the guest reads back.
@Suite(.requires(.guestToolchain)) struct SystemInstructionTests {
  @Test func segmentBasesSwapgsAndDescriptorQueries() throws {
    let m = try GuestMachine(
      code: """
          mov rax, cr4
          or eax, 0x10000                    # CR4.FSGSBASE
          mov cr4, rax
          mov rax, 0x123456789
          wrfsbase rax
          mov ecx, 0xC0000100                # IA32_FS_BASE
          rdmsr
          out 0x10, eax                      # 0x23456789
          mov ecx, 0xC0000102                # IA32_KERNEL_GS_BASE = 0x5000
          mov eax, 0x5000
          xor edx, edx
          wrmsr
          swapgs
          rdgsbase rax
          out 0x11, eax                      # 0x5000
          mov ax, 0x08
          lsl ebx, ax
          mov eax, ebx
          out 0x12, eax                      # 0xFFFFFFFF
          mov ax, 0x08
          lar ebx, ax
          mov eax, ebx
          out 0x13, eax                      # 0x00A09A00 (64-bit code: G, L, P, S, type A)
          mov ax, 0x10
          verw ax
          setz al
          out 0x14, al                       # 1
          str ax
          out 0x15, ax                       # 0x28
          sgdt [rsp - 16]
          mov ax, word ptr [rsp - 16]
          out 0x16, ax                       # 0x37
          stac
          pushfq
          pop rax
          shr eax, 18
          and eax, 1
          out 0x17, al                       # AC = 1
          clac
          hlt
        """)
    let (_, outputs) = try m.runRecordingOutputs(budget: 1000)
    #expect(outputs.map(\.0) == [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17])
    #expect(outputs.map(\.1) == [0x2345_6789, 0x5000, 0xFFFF_FFFF, 0x00A0_9A00, 1, 0x28, 0x37, 1])
  }

  @Test func privilegedInstructionsInRing3AreGeneralProtection() throws {
    // Each one in turn from ring 3; the #GP handler reports the vector's error code and skips it.
    let m = try GuestMachine(
      code: """
          \(GuestMachine.enterRing3())
        user:
          mov cr3, rax                       # 3 bytes each, so the handler can skip them
          lgdt [rax]
          wbinvd
          nop
          rdmsr
          nop
          in al, dx
          nop
          nop
          int 0x81                           # DPL 0 gate: #GP(0x81 * 8 + 2)
          hlt
        .org 0x100
          pop rax
          out 0x10, eax
          add qword ptr [rsp], 3
          iretq
        """, userAccessible: true)
    try m.setGate(13, GuestMachine.codeBase + 0x100)
    try m.setGate(0x81, GuestMachine.codeBase + 0x100)
    let (_, outputs) = try m.runRecordingOutputs(budget: 1000)
    #expect(outputs.map(\.1).prefix(6) == [0, 0, 0, 0, 0, 0x81 * 8 + 2])
  }
}
