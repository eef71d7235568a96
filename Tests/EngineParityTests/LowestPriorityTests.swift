import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import VMM

/// Lowest-priority IPIs go to the addressed CPU with the lowest processor priority: the BSP and
/// one AP are both addressed (x2APIC logical cluster 0, bits 0 and 1). First the BSP's TPR is 0x80
/// and the AP's 0, so vector 0x60 must reach the AP; the AP's handler raises its own TPR to 0x90
/// and the BSP lowers its own to 0, so vector 0x61 must reach the BSP. (Delivering to the first
/// addressed CPU, say, leaves 0x60 pending behind the BSP's TPR and the run times out.)
@Suite struct LowestPriorityTests {
  static let guest = #"""
    main:
      GATE 0x61, bsp_isr
      X2APIC_ON
      movl $0x80F, %ecx
      movl $0x1FF, %eax
      xorl %edx, %edx
      wrmsr
      movl $0x808, %ecx
      movl $0x80, %eax
      wrmsr
      movl $0x830, %ecx
      movl $0xC4500, %eax
      wrmsr
      movl $0xC4620, %eax
      wrmsr
      movl $0xC4620, %eax
      wrmsr
    wait_ap:
      pause
      cmpl $1, 0x9000
      jne wait_ap
      movl $0x830, %ecx
      movl $3, %edx
      movl $0x960, %eax
      wrmsr
    wait_first:
      pause
      cmpl $1, 0x9010
      jne wait_first
      movl $0x808, %ecx
      xorl %eax, %eax
      xorl %edx, %edx
      wrmsr
      sti
      movl $0x830, %ecx
      movl $3, %edx
      movl $0x961, %eax
      wrmsr
    wait_second:
      pause
      cmpl $1, 0x9014
      jne wait_second
      EXIT
    bsp_isr:
      incl 0x9014
      X2APIC_EOI_IRETQ
    """# + "\n" + APICTestGuest.applicationProcessorEntry + "\n" + #"""
      ap_main:
        movw $(ap_isr - ap_start), 0x60 * 4
        movw $0x2000, 0x60 * 4 + 2
        movl $0x1B, %ecx
        rdmsr
        orl $0xC00, %eax
        wrmsr
        movl $0x80F, %ecx
        movl $0x1FF, %eax
        xorl %edx, %edx
        wrmsr
        lock incl 0x9000
        sti
      ap_idle:
        hlt
        jmp ap_idle
      ap_isr:
        lock incl 0x9010
        pushal
        movl $0x808, %ecx
        movl $0x90, %eax
        xorl %edx, %edx
        wrmsr
        movl $0x80B, %ecx
        xorl %eax, %eax
        wrmsr
        popal
        iret
      """#

  static func check(on engine: any Engine) throws {
    let run = try APICTestGuest.run(Self.guest, cpus: 2, on: engine)
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9010) == 1)  // vector 0x60 went to the AP
    #expect(try run.u32(0x9014) == 1)  // vector 0x61 went to the BSP
  }

  @Test(.requires(.guestToolchain)) func interpDeliversToTheLowestPriorityCPU() throws {
    try Self.check(on: InterpreterEngine())
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvmDeliversToTheLowestPriorityCPU() throws {
    try Self.check(on: try KVMEngine())
  }
}
