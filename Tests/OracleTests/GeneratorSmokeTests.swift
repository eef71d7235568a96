import CNative
import Testing

@testable import Oracles

@Test func nativeRunnerRunsGeneratedPrograms() throws {
  let host = HostCPU.detect()
  let usable = host.usableClasses(InstructionClass.allCases)
  for note in usable.notes { print("note: \(note)") }
  let runner = try NativeRunner()
  var generator = ProgramGenerator(classes: usable.classes, features: host.features, seed: 1)
  var outcomes: [String: Int] = [:]
  for _ in 0..<2000 {
    let state = generator.initialState()
    let program = generator.program(count: 4)
    let result = try runner.run(code: program.code, initial: state)
    outcomes[result.outcome.description.components(separatedBy: " (").first ?? "", default: 0] += 1
    if case .other = result.outcome { Issue.record("native run failed: \(result.outcome)") }
    if case .fault(let v, _) = result.outcome, v == 13 || v == 6,
      let i = program.addresses.firstIndex(of: result.state.rip), program.instructions[i].instructionClass != .invalid
    {
      print(
        "FAULT \(v) \(program.instructions[i].instructionClass) \(program.instructions[i].bytes.map { String($0, radix: 16) })"
      )
    }
  }
  print(outcomes)
}
