/// How a `Machine` is put together and run (everything but the engine and the image).
public struct MachineConfiguration {
  /// Where COM1 writes and, for `.stdio`, where host input comes from.
  public var serial: SerialBackend
  /// Receives guest console bytes instead of `serial` (tests capture output with it).
  public var consoleCapture: (([UInt8]) -> Void)?
  /// Where the debug console (ports 0xE9 and 0x402) writes; nil: wherever COM1 writes (mixed).
  public var debugConsole: SerialBackend?
  /// Receives the debug console's bytes instead of `debugConsole`.
  public var debugConsoleCapture: (([UInt8]) -> Void)?
  /// What the engine is asked for when it builds the machine (`Engine.createVM`).
  public var engineOptions: EngineOptions
  /// Stop the guest after this many seconds of wall time (`--timeout`), status 10.
  public var timeoutSeconds: Double?
  /// Stop cleanly on SIGINT/SIGTERM/SIGHUP (status 12) and restore the terminal. For the CLI.
  public var handleHostSignals: Bool
  /// Receives `--verbose` diagnostics.
  public var log: ((String) -> Void)?
  /// The guest is PC firmware started at the reset vector (`--bios`): the platform tables go
  /// through fw_cfg instead of into memory.
  public var firmware: Bool
  /// QEMU's firmware configuration device at ports 0x510-0x511 (`FwCfg`): the CPU count, the
  /// memory map and, when the machine describes itself (`describesPlatform`), the ACPI tables.
  /// Present on every boot path, as on QEMU's PC; a test that puts its own device at those ports
  /// turns it off.
  public var firmwareConfigurationDevice = true
  /// Stop with `StopReason.outputMatched` (status 0) once COM1's output or the debug console's
  /// output contains this text (`--stop-on-output`); each stream is searched on its own.
  /// Empty or nil: never.
  public var stopOnOutput: String?

  /// vCPUs (`--cpus`): vCPU 0 starts with the boot state, the others wait for INIT and a
  /// start-up IPI, as application processors do on a PC. Each runs on its own host thread.
  public var cpuCount = 1

  /// Virtual NUMA nodes (`--numa`): the vCPUs and guest RAM split evenly between this many nodes
  /// (`NUMATopology.evenlySplit`), which the ACPI SRAT and SLIT describe to the guest. nil: no
  /// vNUMA. Needs the VMM's interrupt controllers (`InterruptControllerPlacement.user`).
  public var numaNodes: Int?

  /// Describe the machine with the platform tables even with one vCPU and no vNUMA: Linux needs
  /// ACPI to find its local APIC and IOAPIC and to power off (`trivisor run` sets it for a
  /// bzImage). Off by default, so guests that probe for tables see the plain one-CPU PC.
  public var describesPlatformOnOneCPU = false

  /// Whether the machine describes itself with the PC platform tables (ACPI with MADT, and
  /// SRAT/SLIT for vNUMA; the MP table; docs/platform-tables.md): with several vCPUs or vNUMA
  /// nodes (or `describesPlatformOnOneCPU`), when the VMM models the interrupt controllers.
  /// Firmware receives the ACPI tables through fw_cfg; a directly loaded kernel finds them in
  /// memory (`placesPlatformTablesInMemory`).
  public var describesPlatform: Bool {
    (cpuCount > 1 || numaNodes != nil || describesPlatformOnOneCPU) && engineOptions.interruptController == .user
  }

  /// Whether the machine writes the platform tables into guest memory (a directly loaded kernel
  /// with `describesPlatform`). The loader must then keep images off them and report their area
  /// in the memory map: load with `LoadOptions.platformTables` set to this.
  public var placesPlatformTablesInMemory: Bool { describesPlatform && !firmware }

  /// How to boot again after a reset: reload the firmware or the image into memory and return the
  /// bootstrap processor's boot state (RAM keeps its contents, as on a PC). nil: a reset request
  /// stops the run with `StopReason.reset` (status 14), like QEMU's `-no-reboot`.
  public var reboot: ((GuestMemory) throws -> BootState)?
  /// With `reboot` set, a triple fault resets the machine as on a PC (firmware boots) instead of
  /// stopping with a report of the faulting state.
  public var rebootOnTripleFault = false

  /// Whether engines that can answer some exits without leaving their run loop do so
  /// (`LightweightExitHandler`; `--no-lightweight-exits` turns it off to measure the full path).
  public var lightweightExits = true
  /// Raw disk images on the IDE controller (`IDEController`: primary master, primary slave,
  /// secondary master, secondary slave; at most four). With none, the machine has no IDE
  /// controller. The machine keeps the images open (and locked) for as long as it lives.
  public var disks: [DiskImage] = []
  /// Raw disk images each offered as a virtio-blk PCI device (slots 2, 3, ...; MSI-X with the
  /// VMM's interrupt controllers, INTx otherwise). The machine keeps them open and locked too.
  public var virtioDisks: [DiskImage] = []
  /// A virtio console (after the virtio disks on PCI): its output goes where COM1's goes, and the
  /// host input goes to it instead of COM1.
  public var virtioConsole = false
  /// The network behind a virtio network card (after the virtio disks and console on PCI); nil:
  /// no card. The machine wakes its vCPUs when frames arrive for the guest; whoever created the
  /// backend shuts it down (`UserNetwork.shutdown()`).
  public var network: (any EthernetBackend)?

  /// The shared pCPU pool the vCPUs run under (docs/scheduling.md); nil: every vCPU thread runs
  /// whenever it has guest code to run, as the host schedules it.
  public var scheduling: VCPUScheduling?

  /// A configuration; every parameter defaults to "off" (COM1 to nowhere, no timeout, no signals).
  public init(
    serial: SerialBackend = .null, consoleCapture: (([UInt8]) -> Void)? = nil,
    engineOptions: EngineOptions = EngineOptions(), timeoutSeconds: Double? = nil, handleHostSignals: Bool = false,
    log: ((String) -> Void)? = nil, firmware: Bool = false, stopOnOutput: String? = nil,
    debugConsole: SerialBackend? = nil, debugConsoleCapture: (([UInt8]) -> Void)? = nil
  ) {
    self.serial = serial
    self.consoleCapture = consoleCapture
    self.engineOptions = engineOptions
    self.timeoutSeconds = timeoutSeconds
    self.handleHostSignals = handleHostSignals
    self.log = log
    self.firmware = firmware
    self.stopOnOutput = stopOnOutput
    self.debugConsole = debugConsole
    self.debugConsoleCapture = debugConsoleCapture
  }
}
