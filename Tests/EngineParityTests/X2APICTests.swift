import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import VMM

/// Guests switch their local APICs to x2APIC mode and use them through the MSRs: the ID, LDR
/// and version, SELF IPI, the accesses that raise #GP, and IPIs between vCPUs through the 64-bit
/// ICR (physical and logical cluster destinations).
@Suite struct X2APICTests {
  /// The BSP alone: an x2APIC MSR in xAPIC mode faults; after enabling x2APIC mode it reads its
  /// ID (0x9000), LDR (0x9004), version (0x9008) and the dead MMIO page (0x900C), sends itself
  /// vector 0x40 through SELF IPI (counted at 0x9104), then makes four illegal accesses (EOI
  /// with a non-zero value, a write to the ID, a read of SELF IPI, x2APIC to xAPIC mode) and
  /// reads IA32_APIC_BASE (0x9010). #GP handler: counts at 0x9100 and skips the 2-byte
  /// RDMSR/WRMSR.
  static let basics = #"""
    main:
      GATE 13, gp_handler
      GATE 0x40, self_ipi_handler
      movl $0x802, %ecx
      rdmsr
      X2APIC_ON
      movl $0x802, %ecx
      rdmsr
      movl %eax, 0x9000
      movl $0x80D, %ecx
      rdmsr
      movl %eax, 0x9004
      movl $0x803, %ecx
      rdmsr
      movl %eax, 0x9008
      movq $0xFEE00020, %rbx
      movl (%rbx), %eax
      movl %eax, 0x900C
      movl $0x80F, %ecx
      movl $0x1FF, %eax
      xorl %edx, %edx
      wrmsr
      sti
      movl $0x83F, %ecx
      movl $0x40, %eax
      wrmsr
    wait_self:
      cmpl $1, 0x9104
      jne wait_self
      movl $0x80B, %ecx
      movl $1, %eax
      wrmsr
      movl $0x802, %ecx
      wrmsr
      movl $0x83F, %ecx
      rdmsr
      movl $0x1B, %ecx
      movl $0xFEE00800, %eax
      xorl %edx, %edx
      wrmsr
      movl $0x1B, %ecx
      rdmsr
      movl %eax, 0x9010
      EXIT
    gp_handler:
      incl 0x9100
      addq $8, %rsp
      addq $2, (%rsp)
      iretq
    self_ipi_handler:
      incl 0x9104
      X2APIC_EOI_IRETQ
    """#

  static func checkBasics(_ run: APICTestGuest.Run) throws {
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9000) == 0)  // the BSP's x2APIC ID
    #expect(try run.u32(0x9004) == 1)  // cluster 0, bit 0
    #expect(try run.u32(0x9008) == 0x5_0014)
    #expect(try run.u32(0x900C) == 0xFFFF_FFFF)  // the page no longer responds
    #expect(try run.u32(0x9104) == 1)  // SELF IPI delivered once
    #expect(try run.u32(0x9100) == 5)  // five #GPs
    #expect(try run.u32(0x9010) == 0xFEE0_0D00)  // still x2APIC, BSP flag set
  }

  @Test(.requires(.guestToolchain), arguments: [1, 2, 4]) func interpEnablesX2APICAndUsesItsMSRs(cpus: Int) throws {
    try Self.checkBasics(try APICTestGuest.run(Self.basics, cpus: cpus, on: InterpreterEngine()))
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvmEnablesX2APICAndUsesItsMSRs() throws {
    try Self.checkBasics(try APICTestGuest.run(Self.basics, cpus: 1, on: try KVMEngine()))
  }

  /// The BSP switches to x2APIC mode and starts the APs with INIT and SIPI through the ICR MSR;
  /// each AP (real mode) switches to x2APIC mode, stores its x2APIC ID at 0x9200 + 4 * ID plus
  /// one, counts itself at 0x9000 and waits in HLT. The BSP then sends vector 0x50 to every AP by
  /// physical x2APIC ID and vector 0x51 to all of them at once by a logical cluster-0
  /// destination (mask at 0x900C); each IPI is counted at 0x9010. Presets: 0x9004 = APs,
  /// 0x9008 = vCPUs, 0x900C = the APs' logical mask.
  static let ipis = #"""
    main:
      X2APIC_ON
      movl $0x80F, %ecx
      movl $0x1FF, %eax
      xorl %edx, %edx
      wrmsr
      movl $0x830, %ecx
      movl $0xC4500, %eax
      wrmsr
      movl $0xC4620, %eax
      wrmsr
      movl $0xC4620, %eax
      wrmsr
    wait_aps:
      pause
      movl 0x9000, %eax
      cmpl 0x9004, %eax
      jne wait_aps
      movl $1, %ebx
    each_ap:
      movl $0x830, %ecx
      movl %ebx, %edx
      movl $0x4050, %eax
      wrmsr
      incl %ebx
      cmpl 0x9008, %ebx
      jb each_ap
      movl 0x900C, %edx
      movl $0x4851, %eax
      wrmsr
      movl 0x9004, %eax
      shll $1, %eax
    wait_ipis:
      pause
      cmpl %eax, 0x9010
      jne wait_ipis
      EXIT
    """# + "\n" + APICTestGuest.applicationProcessorEntry + "\n" + #"""
      ap_main:
        movw $(ap_ipi - ap_start), 0x50 * 4
        movw $0x2000, 0x50 * 4 + 2
        movw $(ap_ipi - ap_start), 0x51 * 4
        movw $0x2000, 0x51 * 4 + 2
        movl $0x1B, %ecx
        rdmsr
        orl $0xC00, %eax
        wrmsr
        movl $0x80F, %ecx
        movl $0x1FF, %eax
        xorl %edx, %edx
        wrmsr
        movl $0x802, %ecx
        rdmsr
        incl %eax
        movl %eax, 0x9200(, %ebx, 4)
        lock incl 0x9000
        sti
      ap_idle:
        hlt
        jmp ap_idle
      ap_ipi:
        lock incl 0x9010
        pushal
        movl $0x80B, %ecx
        xorl %eax, %eax
        xorl %edx, %edx
        wrmsr
        popal
        iret
      """#

  static func runIPIs(cpus: Int, on engine: any Engine) throws {
    let aps = UInt32(cpus - 1)
    let mask = UInt32((1 << cpus) - 1) & ~1
    let run = try APICTestGuest.run(
      Self.ipis, cpus: cpus, on: engine, presets: [0x9004: aps, 0x9008: UInt32(cpus), 0x900C: mask])
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9010) == 2 * aps)
    for id in 1..<UInt64(cpus) { #expect(try run.u32(0x9200 + 4 * id) == UInt32(id) + 1) }
  }

  @Test(.requires(.guestToolchain), arguments: [2, 4]) func interpIPIsThroughTheX2APICICR(cpus: Int) throws {
    try Self.runIPIs(cpus: cpus, on: InterpreterEngine())
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvmIPIsThroughTheX2APICICR() throws {
    try Self.runIPIs(cpus: 2, on: try KVMEngine())
  }
  /// The error status register in x2APIC mode: an IPI with vector 5 is not sent and raises the
  /// LVT error interrupt (vector 0x42, counted at 0x9100); the ESR shows send illegal vector
  /// (0x9000) after a write of 0, then nothing after another (0x9004); an IPI to an APIC ID no
  /// vCPU has sets send accept error (0x9008).
  static let errors = #"""
    .macro ESR_TO address
      movl $0x828, %ecx
      xorl %eax, %eax
      xorl %edx, %edx
      wrmsr
      rdmsr
      movl %eax, \address
    .endm
    main:
      GATE 0x42, error_handler
      X2APIC_ON
      movl $0x80F, %ecx
      movl $0x1FF, %eax
      xorl %edx, %edx
      wrmsr
      movl $0x837, %ecx
      movl $0x42, %eax
      wrmsr
      sti
      movl $0x830, %ecx
      movl $0x40005, %eax
      wrmsr
    wait_error:
      cmpl $0, 0x9100
      je wait_error
      ESR_TO 0x9000
      ESR_TO 0x9004
      movl $0x830, %ecx
      movl $0x4050, %eax
      movl $0x99, %edx
      wrmsr
      ESR_TO 0x9008
      EXIT
    error_handler:
      incl 0x9100
      X2APIC_EOI_IRETQ
    """#

  static func checkErrors(_ run: APICTestGuest.Run) throws {
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9000) == 0x20)
    #expect(try run.u32(0x9004) == 0)
    #expect(try run.u32(0x9008) == 0x04)
    #expect(try run.u32(0x9100) >= 1)
  }

  @Test(.requires(.guestToolchain), arguments: [1, 2]) func interpErrorStatusAndErrorInterrupt(cpus: Int) throws {
    try Self.checkErrors(try APICTestGuest.run(Self.errors, cpus: cpus, on: InterpreterEngine()))
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvmErrorStatusAndErrorInterrupt() throws {
    try Self.checkErrors(try APICTestGuest.run(Self.errors, on: try KVMEngine()))
  }
  /// CPUID.1:ECX advertises x2APIC (bit 21) and the TSC-deadline timer (bit 24) (0x9000), and the
  /// advertised x2APIC works: the BSP enables it and reads its ID (0x9004).
  static let advertised = #"""
    main:
      movl $1, %eax
      cpuid
      movl %ecx, 0x9000
      X2APIC_ON
      movl $0x802, %ecx
      rdmsr
      movl %eax, 0x9004
      EXIT
    """#

  static func checkAdvertised(_ run: APICTestGuest.Run) throws {
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9000) & (1 << 21 | 1 << 24) == 1 << 21 | 1 << 24)
    #expect(try run.u32(0x9004) == 0)
  }

  @Test(.requires(.guestToolchain)) func interpAdvertisesX2APICAndTSCDeadline() throws {
    try Self.checkAdvertised(try APICTestGuest.run(Self.advertised, on: InterpreterEngine()))
  }

  /// KVM advertises both where its configuration provides them: KVM's own local APIC with the
  /// in-kernel irqchip (TSC-deadline with KVM_CAP_TSC_DEADLINE_TIMER), the VMM's with the
  /// userspace one when MSR exits reach it (KVM_CAP_X86_USER_SPACE_MSR and the MSR filter).
  @Test(.requires(.guestToolchain, .kvm, .kvmInKernelIRQChip), arguments: [InterruptControllerPlacement.user, .kernel])
  func kvmAdvertisesX2APICAndTSCDeadline(irqchip: InterruptControllerPlacement) throws {
    let capabilities = try KVMSystem().capabilities
    let provided = irqchip == .kernel ? capabilities.tscDeadlineTimer : capabilities.userSpaceMSRFilter
    let run = try APICTestGuest.run(Self.advertised, on: try KVMEngine(), irqchip: irqchip)
    if provided {
      try Self.checkAdvertised(run)
    } else {
      #expect(try run.u32(0x9000) & (1 << 24) == 0)
    }
  }
}
