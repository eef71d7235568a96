import ArgumentParser
import Benchmarks
import Testing

@testable import TrivisorCLI

/// `trivisor bench cpu`'s per-mode options: what they accept and what they refuse (no measuring).
@Suite struct CPUBenchOptionsTests {
  @Test func iterationsAreNamePerColumn() throws {
    let parsed = try CPUBenchCommand.parseIterations(["bochs=50000000", "interp-general=7", "qemu-tcg=2"])
    #expect(parsed == [.bochs: 50_000_000, .interpGeneral: 7, .qemuTCG: 2])
    for bad in ["bochs", "bochs=", "bochs=1", "bochs=x", "kvm=100", "bochs=4294967296"] {
      #expect(throws: ExitCode.self) { try CPUBenchCommand.parseIterations([bad]) }
    }
  }

  @Test func columnsKeepTheTableOrder() throws {
    #expect(try CPUBenchCommand.parseColumns([]) == ModeLoopColumn.allCases)
    #expect(try CPUBenchCommand.parseColumns(["bochs", "interp"]) == [.interp, .bochs])
    #expect(throws: ExitCode.self) { try CPUBenchCommand.parseColumns(["kvm"]) }
  }

  @Test func modesDefaultToAllAndRefuseOthers() throws {
    #expect(try CPUBenchCommand.parse(["--peers"]).parseModes() == ModeLoop.Mode.allCases)
    #expect(try CPUBenchCommand.parse(["--mode", "64", "--mode", "16"]).parseModes() == [.real16, .long64])
    #expect(throws: ExitCode.self) { try CPUBenchCommand.parse(["--mode", "8"]).parseModes() }
  }
}
