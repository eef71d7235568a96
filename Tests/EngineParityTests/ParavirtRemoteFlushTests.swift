import Foundation
import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import Translator

@testable import VMM

/// Remote TLB flushes are waited for (`TranslationFlushBarrier`): vCPU 1 keeps reading through a
/// window page, so its engine holds the translation; vCPU 0 remaps the window to another frame
/// and flushes vCPU 1 (four ways: `mmu_update` + `mmuext_op(tlb_flush_all)`,
/// `update_va_mapping` with UVMF_ALL, `mmu_update` + `mmuext_op(tlb_flush_multi)` with a vCPU
/// mask, `update_va_mapping` with a mask), then raises a round flag. The first read vCPU 1 makes
/// after it sees the flag must show the new frame: the flush hypercall returned only after vCPU 1
/// left the run that held the old translation. Without the wait, vCPU 0 ran on at once and vCPU 1
/// could still read the old frame through its cached translation. On a host whose KVM shadows
/// the guest's page tables the flush also drops KVM's shadows, which the VMM's writes went past
/// (`KVMVirtualMachine.dropShadowPageTables`).
@Suite struct ParavirtRemoteFlushTests {
  static let guest = ParavirtTestGuest.source(
    #"""
      START_VCPU1
      mov %rax, 0x08(%rbp)
      WAIT_UNTIL ack, 0
      // 1: mmu_update to frame B, then mmuext_op(tlb_flush_all)
      MMU_UPDATE val_b
      mov %rax, 0x10(%rbp)
      lea mask(%rip), %rcx
      MMUEXT 10, $0, %rcx
      mov %rax, 0x18(%rbp)
      movq $1, flag(%rip)
      WAIT_UNTIL ack, 1
      // 2: update_va_mapping back to the window's own frame, UVMF_INVLPG | UVMF_ALL
      lea window(%rip), %rdi
      mov val_a(%rip), %rsi
      mov $6, %edx
      HCALL 14
      mov %rax, 0x20(%rbp)
      movq $2, flag(%rip)
      WAIT_UNTIL ack, 2
      // 3: mmu_update to frame B, then mmuext_op(tlb_flush_multi, mask {1})
      MMU_UPDATE val_b
      mov %rax, 0x28(%rbp)
      lea mask(%rip), %rcx
      MMUEXT 8, $0, %rcx
      mov %rax, 0x30(%rbp)
      movq $3, flag(%rip)
      WAIT_UNTIL ack, 3
      // 4: update_va_mapping back, UVMF_TLB_FLUSH with the mask {1}
      lea window(%rip), %rdi
      mov val_a(%rip), %rsi
      lea mask(%rip), %rdx
      or $1, %rdx
      HCALL 14
      mov %rax, 0x38(%rbp)
      movq $4, flag(%rip)
      WAIT_UNTIL ack, 4
      DONE

    ap_entry:
      lea results(%rip), %rbp
      xor %r12d, %r12d
      mov window(%rip), %rax
      mov %rax, 0x100(%rbp)
      movq $0, ack(%rip)
    2:
      mov window(%rip), %rax
      mov flag(%rip), %rcx
      cmp %r12, %rcx
      je 2b
      mov window(%rip), %rax
      mov %rcx, %r12
      mov %rax, 0x100(%rbp,%rcx,8)
      mov %rcx, ack(%rip)
      cmp $4, %rcx
      jne 2b
    3:
      pause
      jmp 3b
    """#,
    data: #"""
      flag:
        .quad 0
      ack:
        .quad -1
      mask:
        .quad 2
      """#,
    done: "PV-FLUSH-DONE")

  static func run(engine e: any Engine) throws {
    let capture = ParavirtMonitorTests.Capture()
    let (machine, memory) = try ParavirtTestGuest.boot(Self.guest, on: e, cpus: 2) {
      $0.consoleCapture = { capture.append($0) }
      $0.stopOnOutput = "PV-FLUSH-DONE"
    }
    // The window's L1 entry, found through the boot's page tables, and its two values.
    let original = try ParavirtTestGuest.prepareWindow(machine, memory)
    #expect(original & 0x000F_FFFF_FFFF_F000 == ParavirtTestGuest.windowFrame)

    let outcome = machine.run()
    #expect(outcome.reason == .outputMatched("PV-FLUSH-DONE"), "\(outcome.reason)")
    let word = { (offset: UInt64) in try ParavirtTestGuest.word(memory, offset) }
    for offset in [0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38] as [UInt64] {
      #expect(try word(offset) == 0, "hypercall result at 0x\(String(offset, radix: 16))")
    }
    // The frame values vCPU 1 reads through the window: its own page (A) and page B.
    let (valueA, valueB) = (ParavirtTestGuest.valueA, ParavirtTestGuest.valueB)
    #expect(try word(0x100) == valueA, "before any remap")
    #expect(try word(0x108) == valueB, "mmu_update + tlb_flush_all")
    #expect(try word(0x110) == valueA, "update_va_mapping, UVMF_ALL")
    #expect(try word(0x118) == valueB, "mmu_update + tlb_flush_multi")
    #expect(try word(0x120) == valueA, "update_va_mapping with a vCPU mask")
  }

  @Test(.requires(.guestToolchain), arguments: ["interp", "dbt"])
  func aRemappedPageIsSeenOnceTheFlushReturns(engine: String) throws {
    try Self.run(engine: engine == "dbt" ? TranslatorEngine() : InterpreterEngine())
  }

  @Test(.requires(.guestToolchain, .kvm)) func aRemappedPageIsSeenOnceTheFlushReturnsOnKVM() throws {
    try Self.run(engine: try KVMEngine())
  }
}
