/// The multiprocessor kernel's shared state and its start: CPU discovery (ACPI MADT), the boot
/// CPU's local APIC, the application processors' start (APStartup), the local APIC timer's
/// calibration. Without a MADT the kernel runs on the boot CPU alone, as before, without touching
/// the local APIC.
enum SMP {
  /// Whether the local APICs are in use (a MADT was found).
  private(set) static var enabled = false
  /// Per-CPU pages prepared: CPU indexes 0..<cpuSlots (some may have failed to start).
  private(set) static var cpuSlots = 1
  /// CPUs running the scheduler.
  private(set) static var onlineCount = 1
  /// CPUs the MADT listed (enabled ones).
  private(set) static var discoveredCount = 1
  /// Fixed IPIs sent, all CPUs together.
  private(set) static var interruptsSent: AtomicWord! = nil

  /// The boot CPU's per-CPU page (GS already points at it, Arch/boot.S), TSS and descriptor
  /// tables, early in kmain.
  static func initializeBootProcessor() {
    let cpu = PerCPU.prepare(index: 0, apicID: 0)
    Platform.loadDescriptorTables(
      gdtr: KernelLayout.gdtr, idtr: InterruptDescriptorTable.pseudoDescriptor(), taskRegister: Selector.taskState)
    cpu.pointee.loadedRoot = Platform.currentAddressSpace()
    shared(&cpu.pointee.online).store(1)
    interruptsSent = AtomicWord()
  }

  /// Discovery, the boot CPU's local APIC, the APIC timer's calibration and AP start, in kmain once
  /// the TSC is calibrated (the start-up delays and the calibration need it).
  static func startApplicationProcessors(timerHertz: Int) {
    guard let processors = ACPI.discoverProcessors(), !processors.apicIDs.isEmpty else {
      Console.write("SMP: running on 1 CPU\n")
      return
    }
    if Platform.isParavirtual {
      // One vCPU: the paravirtual mode has no local APIC (a PV domain's tables list none anyway).
      Console.write("SMP: paravirtual mode; running on 1 CPU\n")
      return
    }
    discoveredCount = processors.apicIDs.count
    if processors.localAPICAddress != LocalAPIC.base {
      Console.write("SMP: the MADT's local APIC is not at 0xFEE00000; running on 1 CPU\n")
      return
    }
    enabled = true
    let boot = PerCPU.cpu(0)
    LocalAPIC.enable(bootProcessor: true)
    boot.pointee.apicID = LocalAPIC.id
    Console.write("SMP: MADT lists ")
    Console.write(decimal: processors.apicIDs.count)
    Console.write(" CPUs; boot CPU apic=")
    Console.write(decimal: Int(boot.pointee.apicID))
    Console.newline()
    LocalAPICTimer.calibrate(timerHertz: timerHertz)
    (cpuSlots, onlineCount) = APStartup.startAll(processors.apicIDs, bootAPIC: boot.pointee.apicID)
    Console.write("SMP: ")
    Console.write(decimal: onlineCount)
    Console.write(" of ")
    Console.write(decimal: discoveredCount)
    Console.write(" CPUs online\n")
  }

  static func isOnline(_ index: Int) -> Bool {
    index < cpuSlots && shared(&PerCPU.cpu(index).pointee.online).load() != 0
  }

  /// This CPU's index.
  static var currentIndex: Int { PerCPU.current.pointee.index }
}
