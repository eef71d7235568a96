import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// One PC-like machine, VM-wide: guest memory, the port-I/O and MMIO buses with the standard
/// devices, interrupt routing, the guest clock, the machine-control lines, the hypercall
/// dispatcher, and the engine's VM with its vCPUs, each driven by a `VCPURunner`. `run()` drives
/// it until the guest stops. docs/design/machine.md has the objects, threads and lock order.
///
/// Devices: `PCDevices` (contracts.md) at their usual ports: COM1 16550A at 0x3F8 (IRQ 4), the
/// i8259 pair at 0x20/0xA0 (+ ELCR 0x4D0), the i8254 PIT at 0x40 (IRQ 0) with port 0x61, the i8042
/// at 0x60/0x64, CMOS/RTC at 0x70, POST port 0x80, port 0x92, the debug console at 0xE9 and 0x402,
/// isa-debug-exit at 0xF4, the power-off register at 0x604 and the PCI host bridge at 0xCF8. With
/// the engine's in-kernel interrupt controller (`--irqchip kernel`) the PIC and PIT are the engine's:
/// the VMM's are neither registered nor advanced, and device IRQs go to the engine's sink.
///
/// Usage: fill `memory` with a loader, then
/// `let machine = try Machine(memory: memory, boot: boot, engine: engine, configuration: config)`,
/// optionally register more devices on `portBus`/`mmioBus`, then `let outcome = machine.run()`.
public final class Machine {
  /// The guest's RAM and ROM.
  public let memory: GuestMemory
  /// Port-I/O devices; register more before `run()`.
  public let portBus = PortIOBus()
  /// Memory-mapped devices; register more before `run()`.
  public let mmioBus = MMIOBus()
  /// Guest time, as devices see it: the host's monotonic clock, or the engine's instruction-driven
  /// clock in deterministic runs.
  public let clock: any GuestClock
  /// Host time: wall-clock statistics, `--timeout`, and the deadline timer.
  public let hostClock: HostClock
  /// Non-nil when guest time follows the instruction count (`--deterministic`).
  public let virtualTime: (any InstructionDrivenClock)?
  /// The engine's VM.
  public let engineVM: any EngineVM
  /// The vCPUs, index 0 the bootstrap processor.
  public let vcpus: [any VirtualCPU]
  /// One runner per vCPU (same order): the run/handle/idle loop and its statistics.
  public private(set) var runners: [VCPURunner] = []
  /// The engine's name ("kvm", "interp").
  public let engineName: String
  /// How the machine was put together.
  public let configuration: MachineConfiguration
  /// Stop, reset and A20 requests from devices, signals and timers.
  public let control = MachineControl()
  /// Whose turn it is among equally low-priority targets (`lowestPriorityTarget`).
  let lowestPriorityTurn = Atomic<UInt64>(0)
  /// Which guest pages hold code the software engines cached (`memory.codeWrites`), shared by every
  /// vCPU and noted by every write through `memory`.
  public var codeWrites: CodeWriteTracker { memory.codeWrites }
  /// Hypercalls, decoded once for every engine.
  public let hypercalls = HypercallDispatcher()
  /// The paravirtual ABI served through `hypercalls` (docs/paravirtualization.md).
  public private(set) lazy var paravirt = ParavirtDomain(machine: self, trapInstruction: engineVM.hypercallInstruction)
  /// Where the hypervisor console (`console_io`) writes: the serial console's output.
  let hypervisorConsole: ([UInt8]) -> Void
  /// The legacy PC devices.
  public let devices: PCDevices

  /// COM1 (0x3F8, IRQ 4).
  public var serial: Serial16550 { devices.serial }
  /// The userspace PIC; nil when the engine provides it (`--irqchip kernel`).
  public let pic: PICPair?
  /// The I/O APIC at 0xFEC00000 (ISA IRQ n on pin n, IRQ 0 on pin 2); nil with the engine's
  /// interrupt controller (`--irqchip kernel`).
  public let ioapic: IOAPIC?
  /// The userspace PIT; nil when the engine provides it (`--irqchip kernel`).
  public let pit: PIT8254?
  /// The CMOS RTC and NVRAM (0x70-0x71).
  public var cmos: CMOS { devices.cmos }
  /// isa-debug-exit (0xF4).
  public var debugExit: DebugExitDevice { devices.debugExit }
  /// The debug console (0xE9, 0x402).
  public var debugConsole: DebugConsole { devices.debugConsole }
  /// The power-off register (0x604).
  public var powerOff: PowerOffDevice { devices.powerOff }
  /// Host input waiting for the UART (filled by the stdin reader with `--serial stdio`).
  public let input = HostInputQueue()
  /// The bootstrap processor's exit statistics (per-vCPU statistics are in `runners`).
  public var statistics: ExitStatistics { runners[0].statistics }

  let console: ConsoleOutput
  /// Where the debug console (0xE9/0x402) writes when it is not `console`.
  let debugConsoleOutput: ConsoleOutput?
  var timedDevices: [any TimedDevice] = []
  var hostInput: HostConsoleInput?
  /// The `stopOnOutput` watcher's state, if one was asked for.
  let outputStop: OutputStop?
  /// Host time at which `--timeout` expires (set by `run()`).
  var timeoutDeadline: UInt64?
  /// The machine lock: every runner holds it while it touches devices, the buses, the PIC and the
  /// host input (never while its vCPU runs guest code). One lock for the whole device model, as a
  /// first SMP locking step (QEMU's "big lock"); docs/design/machine.md.
  let deviceLock = NSLockLike()
  /// Where PCI devices' MSI-X messages go (to `route`, once the vCPUs exist).
  let messages = MessageSignalledInterrupts()
  /// The most vCPUs a machine may have (xAPIC IDs fit in 8 bits; 255 is the broadcast ID).
  public static let maximumCPUCount = 254
  /// The most virtio disks (PCI slots 2-17, BARs 64 KiB apart below 0xFF000000).
  public static let maximumVirtioDisks = 16
  /// The boot state, applied to the bootstrap processor at start.
  let boot: BootState

  /// Builds the machine: the engine's VM and vCPU over `memory` (which the loader has filled), the
  /// devices, and the vCPU state from `boot`.
  public init(
    memory: GuestMemory, boot: BootState, engine: any Engine, configuration: MachineConfiguration
  ) throws(EngineError) {
    self.memory = memory
    self.configuration = configuration
    engineName = engine.name
    hostClock = HostClock()
    self.boot = boot
    let vm = try engine.createVM(memory: memory, options: configuration.engineOptions)
    engineVM = vm
    guard (1...Machine.maximumCPUCount).contains(configuration.cpuCount) else {
      throw EngineError("a machine has 1 to \(Machine.maximumCPUCount) vCPUs, not \(configuration.cpuCount)")
    }
    if configuration.numaNodes != nil && configuration.engineOptions.interruptController != .user {
      throw EngineError("vNUMA needs the VMM's interrupt controllers and tables (--irqchip user)")
    }
    if vm.clock != nil && configuration.cpuCount > 1 {
      throw EngineError("deterministic (virtual-time) runs have one vCPU for now; drop --deterministic or --cpus")
    }
    guard configuration.virtioDisks.count <= Machine.maximumVirtioDisks else {
      throw EngineError(
        "a machine has at most \(Machine.maximumVirtioDisks) virtio disks, not \(configuration.virtioDisks.count)")
    }
    guard configuration.disks.count <= IDEController.maximumDrives else {
      throw EngineError(
        "a machine has at most \(IDEController.maximumDrives) IDE disks, not \(configuration.disks.count)")
    }
    var created: [any VirtualCPU] = []
    for i in 0..<configuration.cpuCount { created.append(try vm.createVCPU(index: i)) }
    vcpus = created
    virtualTime = vm.clock
    clock = vm.clock ?? hostClock

    if let capture = configuration.consoleCapture {
      console = ConsoleOutput(callback: capture)
    } else {
      console = try Self.output(for: configuration.serial, what: "serial")
    }
    if let capture = configuration.debugConsoleCapture {
      debugConsoleOutput = ConsoleOutput(callback: capture)
    } else if let backend = configuration.debugConsole {
      debugConsoleOutput = try Self.output(for: backend, what: "debug console")
    } else {
      debugConsoleOutput = nil
    }

    let clock = self.clock
    let outputStop = configuration.stopOnOutput.flatMap { $0.isEmpty ? nil : OutputStop(text: $0, clock: clock) }
    self.outputStop = outputStop
    let serialSink = Self.watched(console, outputStop)
    let debugSink = debugConsoleOutput.map { Self.watched($0, outputStop) }
    hypervisorConsole = serialSink
    ioapic =
      vm.engineInterruptSink == nil
      ? IOAPIC(id: PlatformDescription(cpuCount: configuration.cpuCount).ioapicID) : nil
    devices = PCDevices(
      memory: memory, clock: clock, control: control, interruptSink: vm.engineInterruptSink, ioapic: ioapic,
      cpuCount: configuration.cpuCount,
      serialOutput: serialSink, consoleOutput: debugSink,
      firmwareConfiguration: configuration.firmwareConfigurationDevice, disks: configuration.disks,
      virtioDisks: configuration.virtioDisks, messages: ioapic != nil ? messages : nil,
      virtioConsole: configuration.virtioConsole, network: configuration.network)
    if vm.engineInterruptSink == nil {
      pic = devices.pic
      pit = devices.pit
      timedDevices = devices.timedDevices
    } else {
      // The engine's PIT and PIC own ports 0x20, 0x40-0x43 and 0x61; the VMM's PIT must not also
      // raise IRQ 0, so it is never advanced.
      pic = nil
      pit = nil
    }
    do throws(PortIOBus.BusError) {
      try devices.register(on: portBus)
    } catch {
      throw EngineError("device wiring: \(error)")
    }
    if !devices.pciMemoryWindow.isEmpty {
      do throws(MMIOBus.BusError) {
        try mmioBus.register(devices.pciMemoryWindow, base: PCIMemoryWindow.base, size: PCIMemoryWindow.size)
      } catch {
        throw EngineError("device wiring: \(error)")
      }
    }

    runners = vcpus.enumerated().map { VCPURunner(index: $0.offset, vcpu: $0.element, machine: self) }
    if let ioapic {
      if configuration.describesPlatform {
        do throws(PortIOBus.BusError) {
          try portBus.register(PM1EventBlock(), ports: 0x600...0x603)
        } catch {
          throw EngineError("device wiring: \(error)")
        }
      }
      ioapic.send = { [unowned self] message in self.route(message) }
      messages.route = { [unowned self] message in self.route(message) }
      do throws(MMIOBus.BusError) {
        try mmioBus.register(ioapic, base: IOAPIC.base, size: 0x1000)
      } catch {
        throw EngineError("device wiring: \(error)")
      }
      for r in runners {
        // The VMM's local APIC answers its MSRs (x2APIC, APIC base, TSC deadline).
        r.vcpu.exitControls.msrReadExits.formUnion(VCPURunner.localAPICMSRs)
        r.vcpu.exitControls.msrWriteExits.formUnion(VCPURunner.localAPICMSRs)
        let kick = RunnerKick(r)
        r.lapic.send = { [unowned self] ipi in self.route(ipi) }
        r.lapic.notify = { kick.wake() }
        r.lapic.levelEOI = { [unowned ioapic] vector in ioapic.endOfInterrupt(vector: vector) }
        timedDevices.append(r.lapic)
      }
    }
    for r in runners {
      // The hypercall-page MSR (CPUID leaf 0x40000002 names it) is the VMM's, whichever irqchip.
      r.vcpu.exitControls.msrWriteExits.insert(Xen.hypercallPageMSR)
    }
    paravirt.install(on: hypercalls)
    try installPlatformTables(intoFirmwareConfiguration: true)
    try runners[0].applyBootState(boot)
    for line in boot.summary { configuration.log?(line) }
    let unsupported = vcpus[0].unsupportedExitControls
    configuration.log?(
      "engine \(engine.name), interrupt controller \(configuration.engineOptions.interruptController.rawValue)"
        + (unsupported.isEmpty ? "" : ", exit controls not honoured: \(unsupported.joined(separator: ", "))"))
    // A console whose reader went away stops the machine (status 16) instead of the process dying
    // of SIGPIPE or the guest writing into the void.
    for (output, what) in [(console, "serial"), (debugConsoleOutput, "debug console")] {
      output?.onClosed { [control] _ in control.requestStop(.outputClosed(what)) }
    }
  }

  private static func output(for backend: SerialBackend, what: String) throws(EngineError) -> ConsoleOutput {
    switch backend {
    case .stdio: return ConsoleOutput(descriptor: 1)
    case .stderr: return ConsoleOutput(descriptor: 2)
    case .null: return ConsoleOutput()
    case .file(let path):
      do throws(HostFileError) {
        return ConsoleOutput(
          descriptor: try HostFile.openOutput(path, what: "\(what) output file"), closeOnDeinit: true)
      } catch {
        throw EngineError(error.description)
      }
    case .descriptor(let fd):
      return ConsoleOutput(descriptor: fd, closeOnDeinit: true)
    }
  }

  /// A device output function writing to `output`; with a `stopOnOutput` text it also watches the
  /// bytes (each stream on its own, so two interleaved streams cannot hide a match). Device
  /// output happens on the vCPU thread while an exit is handled.
  private static func watched(_ output: ConsoleOutput, _ stop: OutputStop?) -> ([UInt8]) -> Void {
    guard let stop else { return { output.write($0) } }
    var watcher = OutputWatcher(text: stop.text)
    let stream = stop.addStream()
    return { bytes in
      output.write(bytes)
      stop.update(stream: stream, watcher.feed(bytes))
    }
  }

  /// The platform tables when `MachineConfiguration.describesPlatform` (several vCPUs or vNUMA
  /// nodes, the VMM's interrupt controllers; docs/platform-tables.md): for a directly loaded
  /// kernel, what firmware would have left (BIOS data area, EBDA, ACPI tables with SRAT/SLIT for
  /// vNUMA, MP table); and on every boot path the ACPI tables through fw_cfg (firmware installs
  /// them from there; `intoFirmwareConfiguration`: once, when the machine is built). A
  /// uniprocessor machine without vNUMA gets none, as before.
  func installPlatformTables(intoFirmwareConfiguration: Bool) throws(EngineError) {
    guard configuration.describesPlatform, ioapic != nil else { return }
    do throws(LoaderError) {
      let numa = try configuration.numaNodes.map { nodes throws(LoaderError) in
        try NUMATopology.evenlySplit(nodeCount: nodes, cpuCount: configuration.cpuCount, memory: memory)
      }
      let platform = PlatformDescription(cpuCount: configuration.cpuCount, numa: numa)
      if intoFirmwareConfiguration { try devices.fwCfg?.addACPITables(for: platform, memory: memory) }
      if !configuration.firmware { _ = try PlatformTables.install(into: memory, platform: platform) }
    } catch {
      throw EngineError("cannot place the platform tables: \(error)")
    }
  }

  /// Asks a running `run()` to stop with `reason` at the next exit (kicks every vCPU). Any thread.
  public func requestStop(_ reason: StopReason) {
    control.requestStop(reason)
  }
}
