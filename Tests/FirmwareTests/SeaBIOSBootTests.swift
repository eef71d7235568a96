import Foundation
import KVMEngine
import Testing
import VMM

/// Boots Debian's SeaBIOS (`apt-get install seabios`) the way `trivisor run --bios FILE
/// --stop-on-output "No bootable device"` does, on each engine, and checks that POST ran to the
/// end: banner on COM1 and on the debug port 0x402, memory sizing from fw_cfg, the PCI scan, the
/// e820 map, and the final "No bootable device" message.
@Suite(.serialized) struct SeaBIOSBootTests {
  static let biosPath = "/usr/share/seabios/bios.bin"
  static let finalMessage = "No bootable device"

  /// What one boot printed and how it ended.
  struct Boot {
    var serial: String
    var debug: String
    var outcome: RunOutcome
    var seconds: Double
  }

  /// The BIOS image, or nil after printing why the test skips.
  static func biosImage(_ test: String = #function) -> [UInt8]? {
    guard let data = FileManager.default.contents(atPath: biosPath) else {
      print("SKIP: \(biosPath) missing (install the seabios package); \(test) needs it")
      return nil
    }
    return Array(data)
  }

  static func boot(_ image: [UInt8], engine: any Engine, timeout: Double = 60) throws -> Boot {
    let memory = try GuestMemory(ramSize: 256 << 20)
    let state = try FirmwareLoader.load(firmware: image, into: memory)
    let serial = Capture()
    let debug = Capture()
    let config = MachineConfiguration(
      consoleCapture: { serial.append($0) }, timeoutSeconds: timeout, firmware: true,
      stopOnOutput: finalMessage, debugConsoleCapture: { debug.append($0) })
    let vm = try VirtualMachine(memory: memory, boot: state, engine: engine, configuration: config)
    let start = Date()
    let outcome = vm.run()
    let seconds = Date().timeIntervalSince(start)
    print("SeaBIOS on \(engine.name): \(outcome.reason.description) after \(String(format: "%.2f", seconds)) s")
    return Boot(serial: serial.text, debug: debug.text, outcome: outcome, seconds: seconds)
  }

  /// The checks every engine must pass.
  static func expectCompletePOST(_ b: Boot) {
    #expect(b.outcome.reason == .outputMatched(finalMessage), "\(b.outcome.reason.description)\n\(b.debug)")
    // The screen, shown on COM1 by SeaBIOS's serial console (fw_cfg etc/sercon-port).
    #expect(b.serial.contains("SeaBIOS (version "))
    #expect(b.serial.contains("No bootable device."))
    // The debug log on port 0x402, through POST.
    for step in [
      "SeaBIOS (version ", "Running on QEMU (i440fx)", "Found QEMU fw_cfg",
      "qemu/e820: addr 0x0000000000000000 len 0x0000000010000000 [RAM]", "=== PCI device probing ===",
      "Found 1 PCI devices", "PCI: init bdf=00:00.0 id=8086:1237", "Found 1 cpu(s)", "Found 1 serial ports",
      "PS2 keyboard initialized", "e820 map has", "Booting from Hard Disk...", "No bootable device.",
    ] {
      #expect(b.debug.contains(step), "debug log lacks '\(step)'")
    }
    // No stale keyboard interrupt reaches SeaBIOS's IRQ 1 handler once it enables interrupts.
    #expect(!b.debug.contains("unknown scancode"))
  }

  @Test func bootsToNoBootableDeviceOnKVM() throws {
    guard let image = Self.biosImage() else { return }
    let engine: KVMEngine
    do { engine = try KVMEngine() } catch {
      print("SKIP: /dev/kvm unusable (\(error)); SeaBIOS on kvm needs it")
      return
    }
    Self.expectCompletePOST(try Self.boot(image, engine: engine))
  }
}

/// Collects guest output from the vCPU thread.
final class Capture: @unchecked Sendable {
  private(set) var bytes: [UInt8] = []
  func append(_ b: [UInt8]) { bytes += b }
  var text: String { String(decoding: bytes, as: UTF8.self) }
}
