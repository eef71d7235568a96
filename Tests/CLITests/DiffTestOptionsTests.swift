import ArgumentParser
import Testing

@testable import TrivisorCLI

/// `trivisor difftest`'s option checks (no instruction runs: each case fails before the first).
@Suite struct DiffTestOptionsTests {
  @Test func approximateClassesRunAlone() throws {
    for classes in ["x87,x87-transcendental", "rcp,alu"] {
      let command = try DiffTestCommand.parse(["--class", classes, "--count", "10"])
      #expect(throws: ValidationError.self) { try command.run() }
    }
  }

  @Test func unknownClassesAndBadCountsAreRefused() throws {
    for arguments in [["--class", "x88"], ["--count", "0"], ["--length", "65"]] {
      let command = try DiffTestCommand.parse(arguments)
      #expect(throws: ValidationError.self) { try command.run() }
    }
  }
}
