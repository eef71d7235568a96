import ArgumentParser
import Testing

@testable import TrivisorCLI

/// `trivisor holes`: which engines it probes, and unknown names refused.
@Suite struct HolesCommandTests {
  @Test func enginesDefaultToEveryColumnAndRepeatsCollapse() throws {
    #expect(try HolesCommand.parse([]).selectedEngines() == ["interp", "dbt", "kvm", "trap", "trap-no-umip", "hybrid"])
    #expect(
      try HolesCommand.parse(["--engine", "dbt", "--engine", "interp", "--engine", "dbt"]).selectedEngines() == [
        "dbt", "interp",
      ])
    #expect(try HolesCommand.parse(["--json"]).json)
  }

  @Test func anUnknownEngineIsAUsageError() throws {
    let command = try HolesCommand.parse(["--engine", "vmware"])
    #expect(throws: ExitCode.self) { try command.selectedEngines() }
  }
}
