import ArgumentParser
import Foundation
import Launcher
import StaticTranslator
import VMM

struct RunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Boot a guest image (or the built-in guest) on an engine.",
    discussion: """
      IMAGE may be an ELF64 kernel, an ELF32 Multiboot v1 kernel, a Linux bzImage, or (with \
      --flat-address) a raw binary. Without IMAGE the reference guest kernel runs its self-test \
      (--append "bench scale=small" runs its benchmarks; --demo boots the small demo guest instead; \
      docs/guest-kernel.md). Exit status: the \
      guest's (0 after power-off through port 0x604, (v<<1)|1 after isa-debug-exit), otherwise the \
      VMM's even codes listed in docs/exit-status.md (2 bad input, 4 engine error, 6 triple fault, \
      8 halted forever, 10 timeout, 12 host signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, \
      SIGUSR2), 14 guest reset with --no-reboot, 16 console output closed by its reader). A guest \
      reset (port 0xCF9, the keyboard controller, port 0x92; with --bios also a triple fault) \
      reboots the machine: devices reset, RAM kept, the image or firmware loaded again. Image, firmware and \
      initrd must be regular files; --serial/--debugcon file:PATH may be a regular file or a FIFO \
      with a reader. Console output is written off the vCPU thread: when the host reader falls \
      more than 1 MiB behind, output is dropped and counted (--stats).
      """
  )

  @Argument(help: "Guest image to boot (default: the reference guest kernel's self-test).")
  var image: String?

  @Option(parsing: .unconditional, help: "Engine: \(EngineRegistry.names.joined(separator: ", ")).")
  var engine = "auto"

  @Option(parsing: .unconditional, help: "Guest RAM, e.g. 256M, 1G, 65536K or bytes.")
  var memory = "256M"

  @Option(
    parsing: .unconditional,
    help:
      "vCPUs (1-254). vCPU 0 boots; the others wait for INIT and start-up IPIs through their local APICs, as on a PC.")
  var cpus = 1

  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      "Virtual NUMA nodes (1-64): the vCPUs and RAM split evenly between them, described by the ACPI SRAT and SLIT.",
      valueName: "nodes"))
  var numa: Int?

  @Option(parsing: .unconditional, help: "COM1 backend: stdio, stderr, null or file:PATH.")
  var serial = "stdio"

  @Option(parsing: .unconditional, help: "Linux bzImage to boot (instead of IMAGE).")
  var kernel: String?

  @Option(
    parsing: .unconditional, help: "Kernel command line (for the reference guest: selftest, bench, scale=N, hz=N).")
  var append: String?

  @Flag(help: "Boot the small built-in demo guest instead of the reference guest kernel.")
  var demo = false

  @Flag(
    help:
      "Boot IMAGE (an x86-64 ELF; without IMAGE the built-in reference kernel) as a deprivileged paravirtual kernel at ring 3, as Xen's PV domain builder does (docs/paravirtualization.md)."
  )
  var pv = false

  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      "Boot Linux with this directory as its root filesystem and run its /sbin/init (or --init) as PID 1.",
      discussion:
        "The directory is packed into an initramfs with trivisor-init, which first loads the kernel modules the machine's devices need (from /lib/modules of the kernel's release). The kernel is --kernel or the newest /boot/vmlinuz-*; the command line starts with console=ttyS0.",
      valueName: "dir"))
  var rootfs: String?

  @Option(
    name: .customLong("init"), parsing: .unconditional,
    help: ArgumentHelp("The init --rootfs runs, a path inside the directory (default /sbin/init).", valueName: "path"))
  var initProgram: String?

  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      "Run one program in a fresh Linux VM: trivisor run --app /bin/echo -- hello.",
      discussion:
        "The program (a path, or a name found in $PATH) and the shared libraries it needs are packed with trivisor-init, which runs it with the arguments after --, its output on the console, and powers off with its exit status, which becomes trivisor's (the kernel's messages are quiet). The kernel is --kernel or the newest /boot/vmlinuz-*.",
      valueName: "program"))
  var app: String?

  @Argument(
    parsing: .postTerminator, help: ArgumentHelp("Arguments of the --app program (after --).", valueName: "args"))
  var appArguments: [String] = []

  @Option(parsing: .unconditional, help: "Initial RAM disk for the kernel.")
  var initrd: String?

  @Option(
    parsing: .unconditional,
    help: "Translation file made by `trivisor translate` (with --engine sbt); a bad or mismatched file is refused.")
  var translations: String?

  @Option(
    name: .customLong("flat-address"), parsing: .unconditional,
    help: "Load IMAGE as a raw binary at this address (started in --flat-mode).")
  var flatAddress: String?

  @Option(
    name: .customLong("flat-mode"), parsing: .unconditional,
    help:
      "CPU mode the raw binary starts in: real (CS:IP from the entry, e.g. 0x7c00 for a boot sector), protected32 or long64 (default)."
  )
  var flatMode: String?

  @Option(
    name: .customLong("flat-entry"), parsing: .unconditional,
    help: "Entry point of the raw binary (default: its address).")
  var flatEntry: String?

  @Option(
    parsing: .unconditional,
    help: "PC BIOS image (e.g. SeaBIOS's bios.bin) to start at the reset vector, instead of IMAGE.")
  var bios: String?

  @Option(
    name: .customLong("disk"), parsing: .unconditionalSingleValue,
    help: ArgumentHelp(
      "Raw disk image on the IDE controller, PATH or PATH,readonly (repeatable, up to 4: primary master, primary slave, secondary master, secondary slave).",
      discussion:
        "Guest writes reach the file as each command completes; FLUSH CACHE and the end of the run fsync it. The image is locked while the VM runs (shared when read-only), so two VMs cannot write one image. Firmware (--bios) boots from the first disk.",
      valueName: "path"))
  var disks: [String] = []

  @Option(
    name: .customLong("virtio-blk"), parsing: .unconditionalSingleValue,
    help: ArgumentHelp(
      "Raw disk image as a virtio-blk PCI device, PATH or PATH,readonly (repeatable, up to 16; PCI slots 2, 3, ...).",
      discussion:
        "Virtio 1.x over PCI (modern transport), MSI-X with --irqchip user, INTx otherwise. Writes, flushes and locking as for --disk.",
      valueName: "path"))
  var virtioDisks: [String] = []

  @Flag(
    name: .customLong("virtio-console"),
    help:
      "Add a virtio console (Linux's hvc0) after the virtio disks on PCI: its output goes where COM1's goes, and host input (stdin) goes to it instead of COM1."
  )
  var virtioConsole = false

  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      "Network: none (default), or user[,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]... (QEMU's spelling).",
      discussion:
        "user adds a virtio network card (after the virtio disks and console on PCI, MAC 52:54:00:12:34:56) on a user-mode network made by libslirp: the guest gets 10.0.2.15 by DHCP, 10.0.2.2 is the gateway and the host's 127.0.0.1, 10.0.2.3 the DNS server. Each hostfwd listens on a host port and passes connections (tcp) or datagrams (udp) to the guest, e.g. hostfwd=tcp:127.0.0.1:2222-:22. An empty HOSTADDR listens on every host address; an empty GUESTADDR is 10.0.2.15 (docs/networking.md).",
      valueName: "spec"))
  var net = "none"

  @Option(
    parsing: .unconditional,
    help:
      "Debug console (ports 0xE9/0x402) backend: stdio, stderr, null or file:PATH (default: with COM1; stderr with --bios)."
  )
  var debugcon: String?

  @Option(
    name: .customLong("stop-on-output"), parsing: .unconditional,
    help: "Stop (status 0) once the guest's console output contains this text.")
  var stopOnOutput: String?

  @Option(
    parsing: .unconditional, help: "Interrupt controller and timer: user (the VMM's PIC/PIT) or kernel (the engine's).")
  var irqchip = "user"

  @Option(
    parsing: .unconditional,
    help:
      "CPU the guest sees: intel or amd, the same virtual CPU under either vendor (docs/cpu-vendors.md); 'help' lists them."
  )
  var cpu: String?

  @Flag(
    name: .customLong("no-reboot"),
    help: "Stop (status 14) when the guest resets instead of rebooting; a triple fault then always stops (status 6).")
  var noReboot = false

  @Flag(help: "Print per-reason VM-exit statistics when the guest stops.")
  var stats = false

  @Flag(
    name: .customLong("no-lightweight-exits"),
    help:
      "Take every port access through the VMM's run loop, even those interp and dbt answer inside the engine (the diagnostic port 0x80, port 0x61 reads, unclaimed ports): to measure the full exit path."
  )
  var noLightweightExits = false

  @Option(
    name: .customLong("stats-json"), parsing: .unconditional, help: "Write the exit statistics as JSON to this file.")
  var statsJSON: String?

  @Option(parsing: .unconditional, help: "Stop the guest after this many seconds (exit status 10).")
  var timeout: Double?

  @Flag(
    help:
      "Drive guest time (PIT, RTC, TSC) from the instruction count, so a guest prints the same output on every run (interp and dbt)."
  )
  var deterministic = false

  @Flag(help: "Describe what the VMM does (engine choice, loading, exit controls).")
  var verbose = false

  @OptionGroup(title: "vCPU scheduling (docs/scheduling.md)")
  var scheduling: RunSchedulingOptions

  @Option(
    name: .customLong("vm"), parsing: .unconditionalSingleValue,
    help: ArgumentHelp(
      "Run several VMs in one process under one pCPU pool: each --vm is one VM's own run options in one argument, e.g. --vm '--demo --weight 512' (repeatable).",
      discussion:
        "Every VM gets its own engine, vCPUs, memory, weight, cap and pinning (--pin counts that VM's vCPUs); --pcpus and --sched-trace are given once, outside the --vm groups. Each VM's console output on stdout has its lines prefixed [vm0], [vm1], ... (or goes where its --serial says). The run ends when every VM has stopped; a VM that fails is named on stderr and the exit status is that of the first VM that failed.",
      valueName: "options"))
  var vms: [String] = []

  func run() throws {
    if cpu == "help" {
      print(CPUOption.helpText)
      return
    }
    if !vms.isEmpty { return try runSeveralVMs() }
    let log: (String) -> Void = { line in if verbose { printError("trivisor: \(line)") } }
    let setup: (memory: GuestMemory, boot: BootState, config: MachineConfiguration, engine: any Engine)
    let session: SchedulingSession?
    do throws(UsageError) {
      session = try makeSchedulingSession(numaNodes: numa)
      setup = try prepare(log: log, session: session)
    } catch {
      throw usageFailure(error.description)
    }
    let vm = try makeMachine(setup, what: "the machine")
    session?.start()
    let outcome = vm.run()
    let traceFailed = finishScheduling(session)
    // --app: trivisor-init reports the program's exit status through isa-debug-exit.
    var exitStatus = outcome.exitStatus
    if app != nil, case .debugExit(let value) = outcome.reason { exitStatus = Int32(value & 0xFF) }
    // The guest's writes are in the files already; make them durable and release the locks.
    for disk in setup.config.disks + setup.config.virtioDisks { disk.close() }
    (setup.config.network as? UserNetwork)?.shutdown()
    switch outcome.reason {
    case .powerOff, .debugExit: log(outcome.reason.description)
    default: printError("trivisor: \(outcome.reason.description)")
    }
    if let dropped = outcome.statistics.consoleBytesDropped, dropped > 0 {
      printError("trivisor: \(dropped) bytes of guest console output were dropped (the host output was full or closed)")
    }
    if stats { printError(outcome.statistics.table) }
    if let path = statsJSON {
      do throws(HostFileError) {
        let json = (try? outcome.statistics.json()).map { [UInt8]($0) } ?? []
        try HostFile.write(json, to: path, what: "--stats-json file")
      } catch {
        printError("trivisor: error: \(oneLine(error.description))")
        if exitStatus == 0 { throw ExitCode(ExitStatus.usage) }
      }
    }
    if exitStatus == 0 && traceFailed { throw ExitCode(ExitStatus.usage) }
    if exitStatus != 0 { throw ExitCode(exitStatus) }
  }

  /// Everything that can fail on bad input, before the engine runs.
  /// The machine `prepare` set up, in the deprivileged mode when `--pv` asked for it (`what`
  /// names it in the error: a failure to create it is an engine error, a PV domain that does not
  /// start a usage error).
  func makeMachine(
    _ setup: (memory: GuestMemory, boot: BootState, config: MachineConfiguration, engine: any Engine), what: String
  ) throws -> Machine {
    let vm: Machine
    do {
      vm = try Machine(memory: setup.memory, boot: setup.boot, engine: setup.engine, configuration: setup.config)
    } catch {
      printError("trivisor: error: cannot create \(what): \(error)")
      throw ExitCode(ExitStatus.engineError)
    }
    if pv {
      do { try vm.paravirt.startDeprivileged(boot: setup.boot) } catch {
        throw usageFailure("\(image ?? ""): \(error)")
      }
    }
    return vm
  }

  func prepare(
    log: @escaping (String) -> Void, session: SchedulingSession? = nil, console: (([UInt8]) -> Void)? = nil
  ) throws(UsageError) -> (
    memory: GuestMemory, boot: BootState, config: MachineConfiguration, engine: any Engine
  ) {
    let size: MemorySize
    do { size = try MemorySize(parsing: memory) } catch { throw UsageError(error.description) }
    guard var serialBackend = SerialBackend(argument: serial) else {
      throw UsageError("invalid --serial '\(serial)' (use stdio, stderr, null or file:PATH)")
    }
    var debugBackend: SerialBackend? = bios != nil ? .stderr : nil
    if let d = debugcon {
      guard let b = SerialBackend(argument: d) else {
        throw UsageError("invalid --debugcon '\(d)' (use stdio, stderr, null or file:PATH)")
      }
      debugBackend = b
    }
    guard let placement = InterruptControllerPlacement(rawValue: irqchip) else {
      throw UsageError("invalid --irqchip '\(irqchip)' (use user or kernel)")
    }
    let identity = try CPUOption.identity(cpu)
    if let t = timeout, !(t > 0 && t.isFinite) { throw UsageError("--timeout must be a positive number of seconds") }
    if let path = statsJSON {
      try hostFile { () throws(HostFileError) in try HostFile.checkOutputPath(path, what: "--stats-json file") }
    }
    if image != nil && kernel != nil { throw UsageError("give either IMAGE or --kernel, not both") }
    let linuxGuest = app != nil || rootfs != nil
    if app != nil && rootfs != nil { throw UsageError("give either --app or --rootfs, not both") }
    if linuxGuest && (image != nil || bios != nil || initrd != nil || demo) {
      throw UsageError("--app and --rootfs build their own initramfs: drop IMAGE, --bios, --initrd and --demo")
    }
    if initProgram != nil && rootfs == nil { throw UsageError("--init needs --rootfs") }
    if !appArguments.isEmpty && app == nil { throw UsageError("arguments after -- are for --app") }
    if linuxGuest && kernel == nil && HostKernel.newest() == nil {
      throw UsageError("--app and --rootfs need a Linux kernel: give --kernel or install linux-image-amd64")
    }
    if bios != nil && (image != nil || kernel != nil) {
      throw UsageError("give either --bios or an image, not both")
    }
    let imagePath = kernel ?? image ?? (linuxGuest ? HostKernel.newest() : nil)
    if imagePath == nil && (initrd != nil || flatAddress != nil || flatEntry != nil || flatMode != nil) {
      throw UsageError("--initrd, --flat-address, --flat-entry and --flat-mode need an image")
    }
    if pv && (kernel != nil || linuxGuest || bios != nil || initrd != nil || flatAddress != nil || demo) {
      throw UsageError(
        "--pv boots IMAGE (an ELF), or the built-in reference kernel without one: drop --kernel, --bios, --initrd, --flat-address, --demo, --app and --rootfs"
      )
    }
    if pv && !EngineRegistry.Entry.bootsParavirtual(engine) {
      throw UsageError(
        "--engine \(engine) deprivileges the guest with a monitor of its own: --pv needs "
          + EngineRegistry.entries.filter(\.bootsParavirtual).map(\.name).joined(separator: ", "))
    }
    if demo && (imagePath != nil || append != nil || bios != nil) {
      throw UsageError("--demo takes no image, --bios or --append")
    }
    // The machine's shape decides what the loader must leave room for (the platform tables).
    var config = MachineConfiguration(
      engineOptions: EngineOptions(interruptController: placement, cpu: identity), timeoutSeconds: timeout,
      handleHostSignals: true, log: verbose ? log : nil, firmware: bios != nil, stopOnOutput: stopOnOutput)
    guard (1...Machine.maximumCPUCount).contains(cpus) else {
      throw UsageError("--cpus must be 1 to \(Machine.maximumCPUCount), not \(cpus)")
    }
    if cpus > 1 && deterministic { throw UsageError("--deterministic runs one vCPU for now; drop --cpus") }
    config.cpuCount = cpus
    if let nodes = numa {
      guard (1...NUMATopology.maximumNodes).contains(nodes) else {
        throw UsageError("--numa must be 1 to \(NUMATopology.maximumNodes) nodes, not \(nodes)")
      }
      guard placement == .user else {
        throw UsageError("--numa needs the VMM's interrupt controllers and ACPI tables: drop --irqchip kernel")
      }
      config.numaNodes = nodes
    }
    if let session { config.scheduling = try joinPool(session, placement: placement) }
    // Linux finds its APICs and its power-off through ACPI: describe even a one-vCPU machine.
    var imageBytes: [UInt8]?
    if let path = imagePath { imageBytes = try readUserFile(path, what: "image") }
    if let bytes = imageBytes, ImageLoader.detectFormat(bytes) == ImageLoader.linuxFormatName {
      config.describesPlatformOnOneCPU = true
    }
    var options = LoadOptions(
      commandLine: append ?? "", imagePath: imagePath, platformTables: config.placesPlatformTablesInMemory)
    if let a = flatAddress {
      guard let v = parseNumber(a) else { throw UsageError("invalid --flat-address '\(a)'") }
      options.flatAddress = v
    }
    if let m = flatMode {
      guard let mode = BootState.Mode(rawValue: m) else {
        throw UsageError("invalid --flat-mode '\(m)' (choose from real, protected32, long64)")
      }
      guard options.flatAddress != nil else { throw UsageError("--flat-mode needs --flat-address") }
      options.flatMode = mode
    }
    if let e = flatEntry {
      guard let v = parseNumber(e) else { throw UsageError("invalid --flat-entry '\(e)'") }
      guard options.flatAddress != nil else { throw UsageError("--flat-entry needs --flat-address") }
      options.flatEntry = v
    }
    if let p = initrd { options.initrd = try readUserFile(p, what: "initrd") }
    // --app and --rootfs: the initramfs is built after the devices are known (their modules).

    let guestMemory: GuestMemory
    do { guestMemory = try GuestMemory(ramSize: size.bytes) } catch { throw UsageError(error.description) }
    guard disks.count <= IDEController.maximumDrives else {
      throw UsageError("at most \(IDEController.maximumDrives) --disk images (two per IDE channel), not \(disks.count)")
    }
    guard virtioDisks.count <= Machine.maximumVirtioDisks else {
      throw UsageError("at most \(Machine.maximumVirtioDisks) --virtio-blk images, not \(virtioDisks.count)")
    }
    var diskFiles = Set<String>()
    for (option, arguments) in [("--disk", disks), ("--virtio-blk", virtioDisks)] {
      for argument in arguments {
        guard let disk = DiskArgument(argument: argument) else { throw UsageError("\(option) needs a path") }
        // The same file twice would meet its own lock: say what is wrong instead.
        let resolved =
          realpath(disk.path, nil).map { p in
            defer { free(p) }; return String(cString: p)
          } ?? disk.path
        guard diskFiles.insert(resolved).inserted else { throw UsageError("disk image '\(disk.path)' is given twice") }
        let image = try hostFile { () throws(HostFileError) in
          try DiskImage(path: disk.path, readOnly: disk.readOnly)
        }
        if option == "--disk" { config.disks.append(image) } else { config.virtioDisks.append(image) }
      }
    }
    let network: NetworkArgument
    do { network = try NetworkArgument(parsing: net) } catch { throw UsageError(error.description) }
    if linuxGuest {
      options.initrd = try linuxGuestImage(
        kernel: imagePath ?? "", bytes: imageBytes ?? [], memory: size.bytes, config: config, network: network != .none)
      options.commandLine = LinuxGuestImage.commandLine(application: app != nil, extra: append)
    }
    // How the guest boots, now and again after each reset.
    let load: (GuestMemory) throws -> BootState
    if let path = bios {
      let bytes = try readUserFile(path, what: "BIOS image")
      load = { memory in
        do { return try FirmwareLoader.load(firmware: bytes, into: memory) } catch {
          throw UsageError("\(path): \(error)")
        }
      }
    } else if pv, let path = imagePath, let bytes = imageBytes {
      let commandLine = append ?? ""
      let cpuCount = cpus
      load = { memory in
        do { return try ParavirtBoot.load(image: bytes, into: memory, commandLine: commandLine, cpus: cpuCount) } catch
        {
          throw UsageError("\(path): \(error)")
        }
      }
    } else if let path = imagePath, let bytes = imageBytes {
      load = { memory in
        do { return try ImageLoader.load(image: bytes, into: memory, options: options) } catch {
          throw UsageError("\(path): \(error)")
        }
      }
    } else if demo {
      load = { memory in
        do { return try DemoGuest.load(into: memory) } catch { throw UsageError("\(error)") }
      }
    } else {
      let commandLine = append ?? ""
      let platformTables = options.platformTables
      let cpuCount = cpus
      load =
        pv
        ? { memory in try ReferenceGuest.loadParavirtual(into: memory, commandLine: commandLine, cpus: cpuCount) }
        : { memory in try ReferenceGuest.load(into: memory, commandLine: commandLine, platformTables: platformTables) }
    }
    let boot: BootState
    do { boot = try load(guestMemory) } catch let error as UsageError { throw error } catch {
      throw UsageError("\(error)")
    }
    // Output files last among the checks (opening creates them), before the engine and the run.
    if case .file(let path) = serialBackend {
      serialBackend = .descriptor(
        try hostFile { () throws(HostFileError) in try HostFile.openOutput(path, what: "--serial file") })
    }
    if case .file(let path)? = debugBackend {
      debugBackend = .descriptor(
        try hostFile { () throws(HostFileError) in try HostFile.openOutput(path, what: "--debugcon file") })
    }
    let selected = try EngineRegistry.select(self.engine, deterministic: deterministic)
    var engine = selected.engine
    var note = selected.note
    let fallback = selected.fallback
    if let path = translations {
      guard self.engine == "sbt" else { throw UsageError("--translations needs --engine sbt") }
      do throws(TranslationFileError) {
        let set = try StaticTranslationSet(contentsOf: path)
        engine = StaticTranslatorEngine(translations: set, deterministic: deterministic)
        note += "; \(set.blockCount) translations over \(set.pageCount) pages from \(path)"
      } catch {
        throw UsageError("\(path): \(error.description)")
      }
    }
    log(note)
    if let fallback { printError("trivisor: \(fallback)") }
    log("memory \(size.bytes >> 20) MiB, serial \(serial)")
    config.serial = serialBackend
    if let console, serial == "stdio" {
      // One of several VMs: its console goes to stdout line by line, prefixed; no host input.
      config.consoleCapture = console
      config.handleHostSignals = false
    }
    config.debugConsole = debugBackend
    config.lightweightExits = !noLightweightExits
    config.virtioConsole = virtioConsole
    if case .user(let forwards) = network {
      // Last: the forwards listen from here on, so nothing else may fail after it.
      do throws(UserNetwork.StartError) {
        config.network = try UserNetwork(forwards: forwards)
      } catch {
        throw UsageError(error.description)
      }
      log(
        "network: user (10.0.2.0/24), forwards: \(forwards.isEmpty ? "none" : forwards.map(\.description).joined(separator: ", "))"
      )
    }
    if !noReboot && app == nil && !pv {
      config.reboot = load
      config.rebootOnTripleFault = bios != nil
    }
    return (guestMemory, boot, config, engine)
  }

  /// The initramfs of `--app` or `--rootfs` for `kernel`, with the modules `config`'s devices need.
  private func linuxGuestImage(
    kernel: String, bytes kernelBytes: [UInt8], memory: UInt64, config: MachineConfiguration, network: Bool
  )
    throws(UsageError)
    -> [UInt8]
  {
    var builder = LinuxGuestImage(maximumSize: Int(min(memory / 2, 1 << 31)))
    builder.modules = LinuxGuestImage.modules(
      ide: !config.disks.isEmpty, virtioBlock: !config.virtioDisks.isEmpty, virtioConsole: config.virtioConsole,
      virtioNetwork: network)
    do throws(GuestImageError) {
      if !builder.modules.isEmpty {
        guard let release = KernelRelease.of(bzImage: kernelBytes) else {
          throw GuestImageError("\(kernel) is not a bzImage with a version string: cannot find its modules")
        }
        guard let directory = HostKernel.modulesDirectory(release: release) else {
          throw GuestImageError("the modules of kernel \(release) are not in /lib/modules/\(release)")
        }
        builder.moduleSet = try KernelModuleSet(directory: directory)
      }
      if let app {
        return try builder.application(program: app, arguments: appArguments)
      }
      return try builder.rootFilesystem(directory: rootfs ?? "", initPath: initProgram ?? "/sbin/init")
    } catch {
      throw UsageError(error.description)
    }
  }
}
