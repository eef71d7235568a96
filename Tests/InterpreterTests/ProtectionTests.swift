import TestHostSupport
import Testing
import VMM

@testable import Interpreter

/// Paging, exception delivery through a guest IDT, privilege checks and fast system calls, run
/// through the `VirtualCPU` protocol of the `interp` engine.
@Suite(.requires(.guestToolchain)) struct ProtectionTests {
  @Test func pageFaultsReportErrorCodeAndCR2AndResumeAfterTheHandlerMapsThePage() throws {
    let m = try GuestMachine(
      code: """
          mov rax, qword ptr [0x401000]      # not present: #PF(0), CR2 = 0x401000
          mov qword ptr [0x400000], 7        # read-only (CR0.WP): #PF(P|W = 3), CR2 = 0x400000
          mov eax, dword ptr [0x400000]
          out 0x12, eax
          hlt
        .org 0x100
          pop rbx                            # error code
          mov eax, ebx
          out 0x10, eax
          mov rax, cr2
          out 0x11, eax
          mov rcx, rax                       # map the page writable, flush it, retry
          shr rcx, 12
          and ecx, 511
          mov rdx, rax
          and rdx, -4096
          or rdx, 3
          mov qword ptr [0x40000 + rcx*8], rdx
          invlpg [rax]
          iretq
        """)
    try m.useSmallPages()
    try m.mapSmallPage(0x40_0000, flags: 0x1)  // present, read-only
    try m.setGate(14, GuestMachine.codeBase + 0x100)
    let (exit, outputs) = try m.runRecordingOutputs()
    #expect(outputs.map(\.0) == [0x10, 0x11, 0x10, 0x11, 0x12])
    #expect(outputs.map(\.1) == [0, 0x40_1000, 3, 0x40_0000, 7])
    #expect(exit == .shutdown(.haltWithInterruptsDisabled))
  }

  @Test func generalProtectionFrameIsPushedByteForByte() throws {
    let m = try GuestMachine(
      code: """
          mov ax, 0x1234                     # beyond the GDT limit
          mov ds, ax                         # #GP(0x1234)
          hlt
        .org 0x100
          hlt
        """)
    try m.setGate(13, GuestMachine.codeBase + 0x100)
    let exit = try m.vcpu.run(budget: 100)
    #expect(exit == .shutdown(.haltWithInterruptsDisabled))
    let regs = try m.vcpu.registers()
    #expect(regs.rip == GuestMachine.codeBase + 0x101)
    #expect(regs.rsp == GuestMachine.stackTop - 48)
    let frame = try (0..<6).map { try m.memory.read(UInt64.self, at: regs.rsp + UInt64($0) * 8) }
    // Error code, RIP of the faulting MOV, CS, RFLAGS (RF set, as for every fault), RSP, SS.
    #expect(frame == [0x1234, GuestMachine.codeBase + 4, 0x08, 0x1_0002, GuestMachine.stackTop, 0x10])
  }

  @Test func ring3PrivilegedInstructionsRaiseGeneralProtection() throws {
    let m = try GuestMachine(
      code: """
          \(GuestMachine.enterRing3())
        user:
          cli                                # #GP(0) at CPL 3 (IOPL 0)
          hlt                                # #GP(0) at CPL 3
          mov rax, qword ptr [0x200000]      # fine: the page is user-accessible
          int 0x80                           # the DPL 3 gate back to the kernel
        .org 0x100
          pop rax                            # #GP handler: report error code and CS
          out 0x10, eax
          mov rax, qword ptr [rsp + 8]
          out 0x11, eax
          add qword ptr [rsp], 1             # skip the 1-byte instruction
          iretq
        .org 0x200
          mov rax, qword ptr [rsp + 8]       # INT 0x80 handler: report CS, stop
          out 0x12, eax
          hlt
        """, userAccessible: true)
    try m.setGate(13, GuestMachine.codeBase + 0x100)
    try m.setGate(0x80, GuestMachine.codeBase + 0x200, dpl: 3)
    let (exit, outputs) = try m.runRecordingOutputs()
    #expect(outputs.map(\.0) == [0x10, 0x11, 0x10, 0x11, 0x12])
    #expect(outputs.map(\.1) == [0, 0x23, 0, 0x23, 0x23])
    #expect(exit == .shutdown(.haltWithInterruptsDisabled))
    #expect(try m.vcpu.specialRegisters().cs.selector == GuestMachine.kernelCode)
  }

  /// A #PF handler at .org 0x100 that reports the error code (port 0x10) and CR2 (port 0x11).
  static let reportingPageFaultHandler = """
      .org 0x100
        pop rax
        out 0x10, eax
        mov rax, cr2
        out 0x11, eax
        hlt
    """

  /// Runs `code` (starting in ring 0) with 0x401000 mapped present, writable and supervisor-only,
  /// and the reporting #PF handler; returns the values it reported.
  func runAgainstASupervisorPage(_ code: String) throws -> [UInt32] {
    let m = try GuestMachine(code: code + "\n" + Self.reportingPageFaultHandler, userAccessible: true)
    try m.useSmallPages()
    try m.mapSmallPage(0x40_1000, flags: 0x3)
    try m.setGate(14, GuestMachine.codeBase + 0x100)
    return try m.runRecordingOutputs().outputs.map(\.1)
  }

  @Test func userPageFaultSetsTheUserBit() throws {
    let reported = try runAgainstASupervisorPage(
      """
        \(GuestMachine.enterRing3())
      user:
        mov qword ptr [0x401000], 1        # supervisor-only page: #PF(P|W|U = 7)
      """)
    #expect(reported == [7, 0x40_1000])
  }

  /// The kernel reads a supervisor page in a loop (its paging-TLB entry is warm and the loads run
  /// as fast forms), then ring 3 reads the same address: the user access must fault, not reuse the
  /// supervisor's cached translation.
  @Test func aWarmSupervisorReadNeverServesRing3() throws {
    let reported = try runAgainstASupervisorPage(
      """
        mov ecx, 50
      warm:
        mov rax, qword ptr [0x401000]      # supervisor read, fast form once cached
        dec ecx
        jnz warm
        \(GuestMachine.enterRing3())
      user:
        mov rax, qword ptr [0x401000]      # user read of a supervisor page: #PF(P|U = 5)
      """)
    #expect(reported == [5, 0x40_1000])
  }

  @Test func syscallAndSysretRoundTrip() throws {
    let m = try GuestMachine(
      code: """
          mov ecx, 0xC0000080                # EFER.SCE
          rdmsr
          or eax, 1
          wrmsr
          mov ecx, 0xC0000081                # STAR: SYSRET base 0x10, SYSCALL CS 0x08
          xor eax, eax
          mov edx, 0x00100008
          wrmsr
          mov ecx, 0xC0000082                # LSTAR
          lea rax, [rip + entry]
          mov rdx, rax
          shr rdx, 32
          wrmsr
          mov ecx, 0xC0000084                # FMASK: IF
          mov eax, 0x200
          xor edx, edx
          wrmsr
          \(GuestMachine.enterRing3(rflags: 0x202))
        user:
          mov eax, 42
          syscall
          mov ebx, eax                       # 43 from the kernel
          mov r8w, cs
          mov r9w, ss
          mov eax, 99
          syscall
        entry:
          cmp eax, 99
          je done
          out 0x10, eax
          inc eax
          sysretq
        done:
          mov rax, r11                       # user RFLAGS
          out 0x11, eax
          hlt
        """, userAccessible: true)
    let (exit, outputs) = try m.runRecordingOutputs()
    #expect(outputs.map(\.0) == [0x10, 0x11])
    #expect(outputs.map(\.1) == [42, 0x202])
    #expect(exit == .shutdown(.haltWithInterruptsDisabled))
    let regs = try m.vcpu.registers()
    #expect(regs.rbx == 43)
    #expect(regs.r8 & 0xFFFF == 0x23)
    #expect(regs.r9 & 0xFFFF == 0x1B)
    let sregs = try m.vcpu.specialRegisters()
    #expect(sregs.cs.selector == 0x08 && sregs.ss.selector == 0x10)
  }

  @Test func tripleFaultShutsDown() throws {
    let m = try GuestMachine(code: "ud2")
    var sregs = try m.vcpu.specialRegisters()
    sregs.idt = DescriptorTable(base: 0, limit: 0)  // #UD -> #GP -> #DF -> triple fault
    try m.vcpu.setSpecialRegisters(sregs)
    #expect(try m.vcpu.run(budget: 10) == .shutdown(.tripleFault))
  }
}

/// Instruction fetch at the end of a page whose successor is not present.
@Suite(.requires(.guestToolchain)) struct PageBoundaryFetchTests {
  func machine() throws -> GuestMachine {
    let m = try GuestMachine(
      code: """
          mov eax, 0x400ffd
          jmp rax
        """ + "\n" + ProtectionTests.reportingPageFaultHandler)
    try m.useSmallPages()
    try m.mapSmallPage(0x40_0000, flags: 0x3)
    try m.setGate(14, GuestMachine.codeBase + 0x100)
    return m
  }

  @Test func instructionEndingOnThePageRunsWithoutTouchingTheNextPage() throws {
    let m = try machine()
    try m.memory.write(0x40_0FFD, bytes: [0x90, 0x90, 0xF4])  // nop, nop, hlt
    let (exit, outputs) = try m.runRecordingOutputs(budget: 100)
    #expect(outputs.isEmpty)
    #expect(exit == .shutdown(.haltWithInterruptsDisabled))
    #expect(try m.vcpu.registers().rip == 0x40_1000)
  }

  @Test func instructionCrossingIntoAnAbsentPageFaultsOnTheSecondPage() throws {
    let m = try machine()
    try m.memory.write(0x40_0FFD, bytes: [0xB8, 0x78, 0x56])  // mov eax, imm32: 2 bytes on the next page
    let (_, outputs) = try m.runRecordingOutputs(budget: 100)
    #expect(outputs.map(\.1) == [0, 0x40_1000])  // not present, supervisor read; CR2 = the second page
  }
}
