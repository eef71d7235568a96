import Foundation
import Launcher
import TestHostSupport
import Testing
import VMM

/// Boots Debian's SeaBIOS (`apt-get install seabios`) the way `trivisor run --bios FILE
/// --stop-on-output "No bootable device"` does, on each engine, and checks that POST ran to the
/// end: banner on COM1 and on the debug port 0x402, memory sizing from fw_cfg, the PCI scan, the
/// e820 map, and the final "No bootable device" message.
@Suite(.serialized, .requires(.seabios)) struct SeaBIOSBootTests {
  static let biosPath = "/usr/share/seabios/bios.bin"
  static let finalMessage = "No bootable device"

  /// What one boot printed and how it ended.
  struct Boot {
    var serial: String
    var debug: String
    var outcome: RunOutcome
  }

  /// The BIOS image (the suite requires the seabios package).
  static func biosImage(_ path: String = biosPath) throws -> [UInt8] {
    try #require(FileManager.default.contents(atPath: path).map { Array($0) }, "\(path) missing")
  }

  /// The engines the boot must work on.
  enum EngineName: String, CaseIterable, Sendable, CustomStringConvertible {
    case kvm, interp
    /// interp with `--deterministic` (virtual time).
    case interpDeterministic = "interp --deterministic"
    var description: String { rawValue }
  }

  /// The engine (kvm cases are separate tests marked `.requires(.kvm)`).
  static func engine(_ name: EngineName) throws -> any Engine {
    switch name {
    case .kvm: return try EngineRegistry.make("kvm")
    case .interp: return try EngineRegistry.make("interp")
    case .interpDeterministic: return try EngineRegistry.make("interp", deterministic: true)
    }
  }

  /// Boots `image` with 256 MiB of RAM; `stopOn` as `--stop-on-output`; `adjust` may change the
  /// machine (fw_cfg files) before it runs.
  static func boot(
    _ image: [UInt8], engine: any Engine, stopOn: String? = finalMessage, timeout: Double = 60,
    reboots: Int = 0, cpus: Int = 1, disks: [DiskImage] = [], virtioDisks: [DiskImage] = [],
    virtioConsole: Bool = false, network: (any EthernetBackend)? = nil, adjust: (Machine) -> Void = { _ in }
  ) throws -> Boot {
    let memory = try GuestMemory(ramSize: 256 << 20)
    let state = try FirmwareLoader.load(firmware: image, into: memory)
    let serial = Capture()
    let debug = Capture()
    var config = MachineConfiguration(
      consoleCapture: { serial.append($0) }, timeoutSeconds: timeout, firmware: true, stopOnOutput: stopOn,
      debugConsoleCapture: { debug.append($0) })
    config.cpuCount = cpus
    config.disks = disks
    config.virtioDisks = virtioDisks
    config.virtioConsole = virtioConsole
    config.network = network
    // `reboots` resets reload the firmware, as `trivisor run --bios` does; the next one stops.
    let machineBox = MachineBox()
    if reboots > 0 {
      var done = 0
      config.reboot = { memory in
        done += 1
        if done > reboots { machineBox.machine?.requestStop(.reset) }
        return try FirmwareLoader.load(firmware: image, into: memory)
      }
      config.rebootOnTripleFault = true
    }
    let vm = try Machine(memory: memory, boot: state, engine: engine, configuration: config)
    machineBox.machine = vm
    adjust(vm)
    let start = Date()
    let outcome = vm.run()
    let seconds = Date().timeIntervalSince(start)
    print(
      "SeaBIOS on \(engine.name): \(outcome.reason.description) after \(String(format: "%.2f", seconds)) s, "
        + "\(outcome.statistics.totalExits) exits")
    return Boot(serial: serial.text, debug: debug.text, outcome: outcome)
  }

  /// POST steps in the debug log (port 0x402), in order.
  static let postSteps = [
    "SeaBIOS (version ", "Running on QEMU (i440fx)", "Found QEMU fw_cfg",
    "qemu/e820: addr 0x0000000000000000 len 0x0000000010000000 [RAM]", "=== PCI device probing ===",
    "Found 1 PCI devices", "PCI: init bdf=00:00.0 id=8086:1237", "sercon: using ioport 0x3f8",
    "Found 1 serial ports", "PS2 keyboard initialized", "e820 map has 5 items", "Booting from Floppy...",
    "Booting from Hard Disk...", "No bootable device.  Retrying in 60 seconds.",
  ]

  /// The checks every engine must pass.
  static func expectCompletePOST(_ b: Boot) {
    #expect(b.outcome.reason == .outputMatched(finalMessage), "\(b.outcome.reason.description)\n\(b.debug)")
    // The screen, shown on COM1 by SeaBIOS's serial console (fw_cfg etc/sercon-port).
    #expect(b.serial.contains("SeaBIOS (version "))
    // The run stops at the end of the final message's line on both streams, wherever the host's
    // speed put the vCPU (the guest's output decides, not time).
    #expect(b.serial.hasSuffix("No bootable device.  Retrying in 60 seconds.\r\n"), "\(b.serial.suffix(80))")
    #expect(b.debug.hasSuffix("No bootable device.  Retrying in 60 seconds.\n"), "\(b.debug.suffix(80))")
    var rest = Substring(b.debug)
    for step in postSteps {
      guard let r = rest.range(of: step) else {
        Issue.record("debug log lacks '\(step)' (in order)\n\(b.debug)")
        return
      }
      rest = rest[r.upperBound...]
    }
    // No stale keyboard interrupt reaches SeaBIOS's IRQ 1 handler once it enables interrupts.
    #expect(!b.debug.contains("unknown scancode"))
  }

  /// One boot of bios.bin per engine, shared by the tests that only read its output.
  nonisolated(unsafe) static var boots: [EngineName: Boot] = [:]

  static func standardBoot(_ name: EngineName) throws -> Boot {
    if let b = boots[name] { return b }
    let b = try boot(try biosImage(), engine: try engine(name))
    boots[name] = b
    return b
  }

  @Test(arguments: [EngineName.interp, .interpDeterministic]) func bootsToNoBootableDevice(_ name: EngineName) throws {
    Self.expectCompletePOST(try Self.standardBoot(name))
  }

  @Test(.requires(.kvm)) func bootsToNoBootableDeviceOnKVM() throws {
    Self.expectCompletePOST(try Self.standardBoot(.kvm))
  }

  /// The debug log with the lines that describe the host CPU taken out (docs/firmware.md lists
  /// them: KVM's signature and kvmclock, the TSC frequency, the local APIC, an allocation they shift).
  static func engineIndependentLines(_ log: String) -> [Substring] {
    let engineSpecific = ["Running on KVM", "kvmclock:", "CPU Mhz=", "Found 1 cpu(s)", "No apic", "Copying MPTABLE"]
    return log.split(separator: "\n").filter { line in !engineSpecific.contains { line.hasPrefix($0) } }
  }

  @Test(.requires(.kvm), arguments: [EngineName.interp, .interpDeterministic])
  func kvmAndInterpPrintTheSame(_ name: EngineName) throws {
    let kvm = try Self.standardBoot(.kvm)
    let interp = try Self.standardBoot(name)
    #expect(kvm.serial == interp.serial)
    #expect(Self.engineIndependentLines(kvm.debug) == Self.engineIndependentLines(interp.debug))
  }

  @Test func the256KiBImageBootsToo() throws { try Self.boot256KiB(.interp) }

  @Test(.requires(.kvm)) func the256KiBImageBootsTooOnKVM() throws { try Self.boot256KiB(.kvm) }

  static func boot256KiB(_ name: EngineName) throws {
    // bios-256k.bin puts its init code below 0xE0000; SeaBIOS copies it from the 4 GiB alias.
    let image = try biosImage("/usr/share/seabios/bios-256k.bin")
    expectCompletePOST(try boot(image, engine: try engine(name)))
  }

  @Test func afterTheBootFailWaitSeaBIOSResetsAndTrivisorStops() throws { try Self.bootFailReset(.interp) }

  @Test(.requires(.kvm)) func afterTheBootFailWaitSeaBIOSResetsAndTrivisorStopsOnKVM() throws {
    try Self.bootFailReset(.kvm)
  }

  /// With 2 vCPUs SeaBIOS starts the AP through its local APIC (INIT-SIPI-SIPI), counts it, and
  /// parks it in `cli; hlt`; POST goes on to the end.
  static func twoCPUs(_ name: EngineName) throws {
    let b = try boot(biosImage(), engine: try engine(name), cpus: 2)
    // POST to the end; the e820 map differs from the uniprocessor one (the ACPI tables from
    // fw_cfg take memory of their own).
    #expect(b.outcome.reason == .outputMatched(finalMessage), "\(b.outcome.reason.description)\n\(b.debug)")
    #expect(b.serial.contains("SeaBIOS (version "))
    #expect(b.debug.contains("Found 2 cpu(s)"), "\(b.debug)")
    #expect(b.debug.contains("No bootable device.  Retrying in 60 seconds."))
  }

  @Test func seaBIOSFindsBothVCPUs() throws { try Self.twoCPUs(.interp) }

  @Test(.requires(.kvm)) func seaBIOSFindsBothVCPUsOnKVM() throws { try Self.twoCPUs(.kvm) }

  @Test func withRebootSeaBIOSStartsAgainAfterItsReset() throws { try Self.bootFailReboot(.interp) }

  @Test(.requires(.kvm)) func withRebootSeaBIOSStartsAgainAfterItsResetOnKVM() throws {
    try Self.bootFailReboot(.kvm)
  }

  /// `trivisor run --bios` (reboot on): SeaBIOS's reset through 0xCF9 reboots the machine, POST
  /// runs again from the reset vector on reset devices, and so on; the test stops at the second reset.
  static func bootFailReboot(_ name: EngineName) throws {
    let b = try boot(biosImage(), engine: try engine(name), stopOn: nil, timeout: 120, reboots: 1) { vm in
      vm.devices.fwCfg?.addFile("etc/boot-fail-wait", data: [0, 0, 0, 0])
    }
    #expect(b.outcome.reason == .reset, "\(b.outcome.reason.description)")
    #expect(b.outcome.statistics.resets == 2)
    // Each boot prints the banner and reaches the boot-fail wait: twice.
    #expect(b.debug.components(separatedBy: "Running on QEMU (i440fx)").count == 3, "\(b.debug)")
    #expect(b.debug.components(separatedBy: "No bootable device.  Retrying in 0 seconds.").count == 3)
    #expect(b.serial.components(separatedBy: "SeaBIOS (version ").count == 3)
  }

  static func bootFailReset(_ name: EngineName) throws {
    let image = try biosImage()
    let engine = try engine(name)
    var machine: Machine?
    let b = try boot(image, engine: engine, stopOn: nil) { vm in
      // QEMU's `-boot reboot-timeout=0`: retry at once instead of after 60 s.
      vm.devices.fwCfg?.addFile("etc/boot-fail-wait", data: [0, 0, 0, 0])
      machine = vm
    }
    #expect(b.outcome.reason == .reset, "\(b.outcome.reason.description)")
    #expect(b.debug.contains("No bootable device.  Retrying in 0 seconds."))
    #expect(b.debug.contains("Rebooting."))
    // SeaBIOS 1.16 on QEMU's i440FX resets through the PIIX reset control register (0xCF9).
    #expect(machine?.control.resetHistory.contains(.resetControlRegister) == true)
    #expect(b.debug.contains("In resume (status=0)"))
  }
}

/// The machine, for a reboot closure made before it exists.
final class MachineBox: @unchecked Sendable {
  weak var machine: Machine?
}

/// Collects guest output from the vCPU thread.
final class Capture: @unchecked Sendable {
  private(set) var bytes: [UInt8] = []
  func append(_ b: [UInt8]) { bytes += b }
  var text: String { String(decoding: bytes, as: UTF8.self) }
}
