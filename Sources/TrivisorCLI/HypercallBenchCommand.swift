import ArgumentParser
import Foundation
import Launcher
import VMM

/// `trivisor bench hypercall`: the paravirtual hypercall's round trip on every engine (ns per
/// `xen_version` call through the hypercall page), next to an exit of comparable kind (an `OUT`
/// to port 0x80, which the POST-code port answers), so the hypercall's cost is also a ratio.
struct HypercallBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "hypercall",
    abstract: "Hypercall round trip (xen_version through the hypercall page) next to a port-I/O exit, per engine.",
    discussion: """
      A 64-bit ring-0 guest installs the hypercall page and calls xen_version(XENVER_version) \
      --calls times in a loop; a second run of the same guest makes as many OUTs to port 0x80. \
      Reports the median over --rounds of the loop's wall time per iteration (the machine's set-up \
      is outside the measurement; its boot, a few instructions, inside).
      """
  )

  @Option(help: "Hypercalls (and OUTs) per run.")
  var calls = 100_000

  @Option(name: .customLong("engine"), help: "Engines to measure (repeatable; default every available one).")
  var engines: [String] = []

  @OptionGroup var options: BenchOptions

  func run() throws {
    try options.checkBuild()
    try options.validateRounds()
    guard (1...100_000_000).contains(calls) else { throw usageFailure("--calls must be 1 to 100000000") }
    print(
      "Hypercall round trip, \(HostDescription.current), \(isDebugBuild ? "debug" : "release") build, \(calls) calls, median of \(options.rounds)"
    )
    print("engine   xen_version ns   OUT 0x80 ns   ratio")
    var failed = false
    for entry in EngineRegistry.entries where engines.isEmpty || engines.contains(entry.name) {
      if let why = entry.unavailableReason() {
        print("\(entry.name): unavailable on this host: \(why)")
        continue
      }
      do {
        let hypercall = try median { () throws -> Double in try measure(entry, hypercall: true) }
        let out = try median { () throws -> Double in try measure(entry, hypercall: false) }
        let line = [
          entry.name.padding(toLength: 8, withPad: " ", startingAt: 0),
          String(format: "%14.0f", hypercall), String(format: "%13.0f", out), String(format: "%7.2f", hypercall / out),
        ]
        print(line.joined(separator: " "))
      } catch {
        print("\(entry.name): failed: \(error)")
        failed = true
      }
    }
    if failed { throw ExitCode(ExitStatus.engineError) }
  }

  private func median(_ body: () throws -> Double) throws -> Double {
    var samples: [Double] = []
    for _ in 0..<options.rounds { samples.append(try body()) }
    samples.sort()
    return samples[samples.count / 2]
  }

  /// One run: nanoseconds per loop iteration.
  private func measure(_ entry: EngineRegistry.Entry, hypercall: Bool) throws -> Double {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: Self.guest(calls: UInt32(calls), hypercall: hypercall))
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    var configuration = MachineConfiguration(timeoutSeconds: 3600)
    configuration.firmwareConfigurationDevice = false
    let machine = try Machine(memory: memory, boot: boot, engine: try entry.make(false), configuration: configuration)
    let start = ContinuousClock.now
    let outcome = machine.run()
    let elapsed = ContinuousClock.now - start
    guard outcome.reason == .debugExit(value: 0) else {
      throw HypercallBenchFailure(description: "the guest stopped: \(outcome.reason.description)")
    }
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    return seconds * 1e9 / Double(calls)
  }

  /// The guest (machine code, loaded at 0x10000): install the hypercall page at 0x80000 (MSR from
  /// CPUID 0x40000002), then `calls` times either xen_version(0, NULL) through stub 17 or
  /// `out %al, $0x80`, then isa-debug-exit with 0.
  static func guest(calls: UInt32, hypercall: Bool) -> [UInt8] {
    var code: [UInt8] = [
      0xB8, 0x02, 0x00, 0x00, 0x40,  // mov $0x40000002, %eax
      0x0F, 0xA2,  // cpuid
      0x89, 0xD9,  // mov %ebx, %ecx
      0xB8, 0x00, 0x00, 0x08, 0x00,  // mov $0x80000, %eax
      0x31, 0xD2,  // xor %edx, %edx
      0x0F, 0x30,  // wrmsr
      0x41, 0xBE,  // mov $calls, %r14d
    ]
    code += withUnsafeBytes(of: calls.littleEndian) { Array($0) }
    let body: [UInt8] =
      hypercall
      ? [
        0x31, 0xFF,  // xor %edi, %edi
        0x31, 0xF6,  // xor %esi, %esi
        0xBB, 0x20, 0x02, 0x08, 0x00,  // mov $0x80220 (stub 17), %ebx
        0xFF, 0xD3,  // call *%rbx
      ]
      : [0xE6, 0x80]  // out %al, $0x80
    code += body
    code += [0x41, 0xFF, 0xCE]  // dec %r14d
    code += [0x75, UInt8(bitPattern: Int8(-(body.count + 3 + 2)))]  // jnz loop
    code += [0xB0, 0x00, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD]  // mov $0, %al; out %al, $0xF4; hlt; jmp hlt
    return code
  }
}

/// A measurement run that did not end with the guest's own exit.
struct HypercallBenchFailure: Error, CustomStringConvertible {
  /// What happened instead.
  let description: String
}
