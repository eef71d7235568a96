import ArgumentParser
import CKVM
import Foundation
import KVMEngine
import VMM

/// `trivisor bench kvm`: the kvm engine against its baselines.
///
/// - `startup`: VM creation (open /dev/kvm, 256 MiB of RAM, VM, vCPU, devices, registers) to the
///   exit of the guest's first instruction (an OUT to isa-debug-exit).
/// - `pio-round-trip-ring0/3`: a guest OUT loop through Trivisor's full run loop (statistics,
///   buses, timers, interrupt checks) against `ckvm_bench_pio`, the minimal C loop doing the same
///   ioctls on the same guest code. Target ratio <= 1.10.
/// - `compute-ring3`: an xorshift loop in guest ring 3 against the same machine code run natively.
struct KVMBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kvm", abstract: "Benchmark the kvm engine: startup, port-I/O exit round trip, ring-3 compute.")

  @OptionGroup var options: BenchOptions

  @Option(help: "OUT exits per port-I/O round (ring 0).")
  var exits = 20_000

  @Option(help: "Iterations of the compute loop.")
  var iterations = 200_000_000

  func run() throws {
    try options.checkBuild()
    try options.validateRounds()
    guard (1...100_000_000).contains(exits), (1...100_000_000_000).contains(iterations) else {
      throw usageFailure("--exits or --iterations out of range")
    }
    do { _ = try KVMSystem() } catch { throw usageFailure("\(error)") }
    let cpu = HostCPUInfo.read()
    var report = BenchReport(
      suite: "kvm", buildConfiguration: isDebugBuild ? "debug" : "release",
      host: [cpu.vendor, cpu.model].compactMap { $0 }.joined(separator: " ")
        + (cpu.flags.contains("hypervisor") ? " (nested)" : ""),
      date: ISO8601DateFormatter().string(from: Date()))
    do {
      report.results.append(try startup())
      for user in [false, true] { report.results.append(try portIORoundTrip(userMode: user)) }
      report.results.append(try compute())
    } catch let e as ExitCode {
      throw e
    } catch {
      printError("trivisor: error: benchmark failed: \(error)")
      throw ExitCode(ExitStatus.engineError)
    }
    print(report.table)
    if let path = options.json {
      do { try report.writeJSON(to: path) } catch { throw usageFailure("cannot write '\(path)': \(error)") }
    }
  }

  /// A machine over a fresh kvm engine running `code` at 0x10000 (and `extra` pieces elsewhere).
  private func machine(
    code: [UInt8], ram: UInt64 = 2 << 20, userMode: Bool = false, extra: [(UInt64, [UInt8])] = [],
    registers: (inout Registers) -> Void = { _ in }
  ) throws -> Machine {
    let engine = try KVMEngine()
    let memory = try GuestMemory(ramSize: ram)
    try memory.write(0x10000, bytes: code)
    for (address, bytes) in extra { try memory.write(address, bytes: bytes) }
    var boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000, stack: 0x80000, userMode: userMode)
    registers(&boot.registers)
    return try Machine(memory: memory, boot: boot, engine: engine, configuration: MachineConfiguration())
  }

  private func startup() throws -> BenchReport.Result {
    var rounds: [Double] = []
    for _ in 0..<max(options.rounds, 10) {
      let t0 = ckvm_now_ns()
      let vm = try machine(code: [0xE6, 0xF4], ram: 256 << 20)  // out %al, $0xf4
      let outcome = vm.run()
      let t1 = ckvm_now_ns()
      guard outcome.reason == .debugExit(value: 0) else { throw EngineError("startup guest: \(outcome.reason)") }
      rounds.append(Double(t1 - t0) / 1e3)
    }
    return BenchReport.Result(
      name: "startup", description: "VM creation (256 MiB) to the exit of the guest's first instruction",
      value: median(rounds), unit: "us", rounds: rounds)
  }

  private func portIORoundTrip(userMode: Bool) throws -> BenchReport.Result {
    let n = userMode ? max(1, exits / 4) : exits
    let code = BenchGuestImages.portIOLoop
    var trivisor: [Double] = []
    var baseline: [Double] = []
    for _ in 0..<options.rounds {
      let c = code.withUnsafeBufferPointer { ckvm_bench_pio($0.baseAddress, $0.count, UInt64(n), userMode ? 1 : 0) }
      guard c.error == 0 else {
        throw EngineError("C baseline failed at \(String(cString: c.step)): \(String(cString: strerror(-c.error)))")
      }
      baseline.append(Double(c.nanoseconds) / Double(c.exits))
      let vm = try machine(code: code, userMode: userMode) { $0.rcx = UInt64(n) }
      let t0 = ckvm_now_ns()
      let outcome = vm.run()
      let t1 = ckvm_now_ns()
      guard outcome.reason == .debugExit(value: 0) else { throw EngineError("port-I/O guest: \(outcome.reason)") }
      trivisor.append(Double(t1 - t0) / Double(n))
    }
    let value = median(trivisor)
    let base = median(baseline)
    // Rounds are paired (C, then Trivisor, back to back): the median of the per-pair ratios
    // cancels most of the drift of a loaded host.
    let ratio = median(zip(trivisor, baseline).map { $0 / $1 })
    return BenchReport.Result(
      name: "pio-round-trip-ring\(userMode ? 3 : 0)",
      description:
        "OUT exit round trip through the full run loop, \(n) exits per round, guest in ring \(userMode ? 3 : 0)",
      value: value, unit: "ns", baseline: base,
      baselineDescription: "minimal C KVM_RUN loop on the same guest (CKVM ckvm_bench_pio)", ratio: ratio,
      ratioTarget: 1.10, targetMet: ratio <= 1.10, rounds: trivisor, baselineRounds: baseline)
  }

  private func compute() throws -> BenchReport.Result {
    let kernel = BenchGuestImages.computeKernel
    var guest: [Double] = []
    var native: [Double] = []
    for _ in 0..<min(options.rounds, 3) {
      var ok: Int32 = 0
      let t0 = ckvm_now_ns()
      let expected = kernel.withUnsafeBufferPointer {
        ckvm_run_native($0.baseAddress, $0.count, UInt64(iterations), &ok)
      }
      let t1 = ckvm_now_ns()
      guard ok != 0 else { throw EngineError("cannot map executable memory for the native run") }
      native.append(Double(t1 - t0) / 1e6)

      let vm = try machine(
        code: BenchGuestImages.computeWrapper, userMode: true, extra: [(0x11000, kernel)]
      ) { $0.rdi = UInt64(iterations) }
      let result = ResultDevice(debugExit: vm.debugExit)
      try vm.mmioBus.register(result, base: 0xD000_0000, size: 0x1000)
      let t2 = ckvm_now_ns()
      let outcome = vm.run()
      let t3 = ckvm_now_ns()
      guard outcome.reason == .debugExit(value: 0), result.value == expected else {
        throw EngineError("compute guest: \(outcome.reason), result \(result.value) instead of \(expected)")
      }
      guest.append(Double(t3 - t2) / 1e6)
    }
    let value = median(guest)
    let base = median(native)
    let ratio = median(zip(guest, native).map { $0 / $1 })
    return BenchReport.Result(
      name: "compute-ring3",
      description: "xorshift64 loop, \(iterations) iterations, in guest ring 3 (whole VM run)",
      value: value, unit: "ms", baseline: base, baselineDescription: "the same machine code run natively on the host",
      ratio: ratio, rounds: guest, baselineRounds: native)
  }
}

/// The compute guest's MMIO device: offset 0 takes the 64-bit result, offset 0x10 ends the run
/// through isa-debug-exit (with the written value).
private final class ResultDevice: MMIODevice {
  private let debugExit: DebugExitDevice
  private(set) var value: UInt64 = 0
  init(debugExit: DebugExitDevice) { self.debugExit = debugExit }
  func read(offset: UInt64, size: Int) -> UInt64 { 0 }
  func write(offset: UInt64, size: Int, value: UInt64) {
    if offset == 0 { self.value = value }
    if offset == 0x10 { debugExit.write(port: 0xF4, size: 1, value: UInt32(truncatingIfNeeded: value)) }
  }
}
