import Interpreter
import KVMEngine
import Synchronization
import TestHostSupport
import Testing
import Translator
import VMM

/// Runs `APICTestGuest` sources with the console captured (console_io writes land there).
enum HypercallGuest {
  /// Where the guests install their hypercall page.
  static let page: UInt64 = 0x80000

  /// The outcome, the guest's memory and what it wrote to the console.
  struct Run {
    let outcome: RunOutcome
    let memory: GuestMemory
    let console: [UInt8]
    func u32(_ address: UInt64) throws -> UInt32 { try memory.read(UInt32.self, at: address) }
    func u64(_ address: UInt64) throws -> UInt64 { try memory.read(UInt64.self, at: address) }
  }

  /// Assembles `APICTestGuest.prelude + source` and runs it on `engine` with one vCPU; the
  /// console's bytes are kept when `captureConsole`, dropped otherwise.
  static func run(
    _ source: String, on engine: any Engine, irqchip: InterruptControllerPlacement = .user,
    timeoutSeconds: Double = 120, captureConsole: Bool = true
  ) throws -> Run {
    let image = try InlineGuestAssembler.assemble(APICTestGuest.prelude + "\n" + source)
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: image)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    let console = Mutex<[UInt8]>([])
    var configuration = MachineConfiguration(
      consoleCapture: { bytes in if captureConsole { console.withLock { $0 += bytes } } },
      engineOptions: EngineOptions(interruptController: irqchip), timeoutSeconds: timeoutSeconds)
    configuration.firmwareConfigurationDevice = false
    let machine = try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
    let outcome = machine.run()
    return Run(outcome: outcome, memory: memory, console: console.withLock { $0 })
  }
}

/// The hypercall ABI on every engine: a ring-0 64-bit guest finds Trivisor's CPUID leaves,
/// installs the hypercall page with WRMSR and calls through it: xen_version, console_io write
/// (seen on the console), a number nobody serves (-ENOSYS) and a bad pointer (-EFAULT). The
/// stubs hold the engine's trap (VMCALL on interp and dbt, `out %eax, $0xE4` on kvm).
@Suite struct HypercallPageTests {
  static let guest = #"""
    .set PAGE, 0x80000
    .macro HCALL n
      movq $(PAGE + \n * 32), %rbx
      call *%rbx
    .endm
    main:
      movl $0x40000000, %eax
      cpuid
      movl %eax, 0x9000
      movl %ebx, 0x9004
      movl %ecx, 0x9008
      movl %edx, 0x900C
      movl $0x40000001, %eax
      cpuid
      movl %eax, 0x9010
      movl $0x40000002, %eax
      cpuid
      movl %eax, 0x9014
      movl %ebx, 0x9018
      movl %ebx, %ecx
      movl $PAGE, %eax
      xorl %edx, %edx
      wrmsr
      # xen_version(XENVER_version, NULL)
      xorl %edi, %edi
      xorl %esi, %esi
      HCALL 17
      movq %rax, 0x9020
      # console_io(CONSOLEIO_write, 6, message)
      xorl %edi, %edi
      movl $6, %esi
      movq $message, %rdx
      HCALL 18
      movq %rax, 0x9028
      # number 60: served by nobody
      HCALL 60
      movq %rax, 0x9030
      # console_io write from an unmapped address
      xorl %edi, %edi
      movl $4, %esi
      movq $0x00007000deadb000, %rdx
      HCALL 18
      movq %rax, 0x9038
      EXIT
    message:
      .ascii "hello\n"
    """#

  static func check(_ run: HypercallGuest.Run, trap: [UInt8]) throws {
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9000) == 0x4000_0002)
    let signature = try [0x9004, 0x9008, 0x900C].flatMap { a in
      withUnsafeBytes(of: try run.u32(UInt64(a)).littleEndian) { Array($0) }
    }
    #expect(signature == Array("TrivisorVMM\0".utf8))
    #expect(try run.u32(0x9010) == 0x0004_0013)
    #expect(try run.u32(0x9014) == 1)
    #expect(try run.u32(0x9018) == 0x4000_0000)
    #expect(try run.u64(0x9020) == 0x0004_0013)
    #expect(try run.u64(0x9028) == 0)
    #expect(try run.u64(0x9030) == UInt64(bitPattern: -38))
    #expect(try run.u64(0x9038) == UInt64(bitPattern: -14))
    #expect(String(decoding: run.console, as: UTF8.self).contains("hello\n"))
    let stub = try run.memory.read(HypercallGuest.page + 17 * 32, count: 5 + trap.count + 1)
    #expect(stub == [0xB8, 17, 0, 0, 0] + trap + [0xC3])
  }

  @Test(.requires(.guestToolchain)) func interp() throws {
    try Self.check(try HypercallGuest.run(Self.guest, on: InterpreterEngine()), trap: [0x0F, 0x01, 0xC1])
  }

  @Test(.requires(.guestToolchain)) func dbt() throws {
    try Self.check(try HypercallGuest.run(Self.guest, on: TranslatorEngine()), trap: [0x0F, 0x01, 0xC1])
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvm() throws {
    try Self.check(try HypercallGuest.run(Self.guest, on: try KVMEngine()), trap: [0xE7, 0xE4])
  }

  /// KVM's local APIC answers the APIC MSRs itself, but the hypercall page's MSR still exits.
  @Test(.requires(.guestToolchain, .kvm)) func kvmWithKernelIRQChip() throws {
    let run = try HypercallGuest.run(Self.guest, on: try KVMEngine(), irqchip: .kernel)
    try Self.check(run, trap: [0xE7, 0xE4])
  }

  /// Ring 3 (entered by IRETQ with IOPL 3, which lets kvm's OUT trap and the EXIT through): the
  /// trap reaches the VMM on every engine, which refuses user code of a ring-0 guest (-EPERM).
  static let userGuest = #"""
    .set PAGE, 0x80000
    main:
      movl $0x40000002, %eax
      cpuid
      movl %ebx, %ecx
      movl $PAGE, %eax
      xorl %edx, %edx
      wrmsr
      pushq $0x23
      pushq $0x8F000
      pushq $0x3002
      pushq $0x1B
      pushq $user
      iretq
    user:
      movq %cs, %rax
      movq %rax, 0x9040
      xorl %edi, %edi
      xorl %esi, %esi
      movq $(PAGE + 17 * 32), %rbx
      call *%rbx
      movq %rax, 0x9048
      EXIT
    """#

  static func checkUser(_ run: HypercallGuest.Run) throws {
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    let cs = try run.u64(0x9040)
    // CPL 3 (the selector's RPL). On this host's nested kvm the guest reads CS as 0x33, not the
    // 0x1B its IRETQ loaded: the RPL is what the test needs.
    #expect(cs & 3 == 3, "CS \(String(cs, radix: 16))")
    #expect(try run.u64(0x9048) == UInt64(bitPattern: -1))
  }

  @Test(.requires(.guestToolchain)) func interpFromRing3() throws {
    try Self.checkUser(try HypercallGuest.run(Self.userGuest, on: InterpreterEngine()))
  }

  @Test(.requires(.guestToolchain)) func dbtFromRing3() throws {
    try Self.checkUser(try HypercallGuest.run(Self.userGuest, on: TranslatorEngine()))
  }

  @Test(.requires(.guestToolchain, .kvm)) func kvmFromRing3() throws {
    try Self.checkUser(try HypercallGuest.run(Self.userGuest, on: try KVMEngine()))
  }
}
