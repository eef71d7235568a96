import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import VMM

/// The built-in demo guest (serial output, PIT interrupts through the PIC, HLT, power-off) gives
/// the same output, status and exit counts on both interpreter flavours...
@Test func demoGuestRunsTheSameOnTheInterpreter() throws {
  try checkDemoGuest(on: [InterpreterEngine(), InterpreterEngine(deterministic: true)])
}

/// ... and on kvm.
@Test(.requires(.kvm)) func demoGuestRunsTheSameOnKVM() throws {
  try checkDemoGuest(on: [InterpreterEngine(deterministic: true), try KVMEngine()])
}

func checkDemoGuest(on engines: [any Engine]) throws {
  var results: [(name: String, output: String, status: Int32, io: [String: UInt64])] = []
  for engine in engines {
    let memory = try GuestMemory(ramSize: 16 << 20)
    let boot = try DemoGuest.load(into: memory)
    let output = OutputBuffer()
    let vm = try Machine(
      memory: memory, boot: boot, engine: engine,
      configuration: MachineConfiguration(consoleCapture: { output.append($0) }, timeoutSeconds: 30))
    let outcome = vm.run()
    var io: [String: UInt64] = [:]
    for r in outcome.statistics.reasons where r.reason.hasPrefix("io-") { io[r.reason] = r.count }
    results.append((engine.name, output.text, outcome.exitStatus, io))
  }
  let reference = results[0]
  #expect(reference.status == 0)
  #expect(reference.output.contains("timer interrupts: 20 of 20"))
  for r in results.dropFirst() {
    #expect(r.output == reference.output, "\(r.name) printed something else")
    #expect(r.status == reference.status)
    #expect(r.io == reference.io, "\(r.name) took different port-I/O exits: \(r.io) vs \(reference.io)")
  }
}

/// Collects guest console bytes.
final class OutputBuffer: @unchecked Sendable {
  private(set) var bytes: [UInt8] = []
  func append(_ b: [UInt8]) { bytes += b }
  var text: String { String(decoding: bytes, as: UTF8.self) }
}
