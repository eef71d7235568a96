import Benchmarks
import Testing

/// The per-mode table's arithmetic and text, from made-up timings (no measurement).
@Suite struct ModeLoopReportTests {
  @Test func mipsIsTheLoopOverTheDifferenceOfTheRuns() {
    // 5 * (1_000_001 - 1) instructions in 2 s more than the 1-iteration run: 2.5 MIPS.
    #expect(ModeLoopReport.mips(iterations: 1_000_001, shortSeconds: 0.5, longSeconds: 2.5) == 2.5)
    #expect(ModeLoopReport.mips(iterations: 1000, shortSeconds: 1, longSeconds: 1) == nil)
    #expect(ModeLoopReport.mips(iterations: 1, shortSeconds: 1, longSeconds: 2) == nil)
  }

  private func report(bochs: [Double], interp: [Double], general: [Double]) -> ModeLoopReport {
    var report = ModeLoopReport(
      modes: ModeLoop.Mode.allCases, columns: [.interp, .interpGeneral, .bochs, .qemuTCG])
    for (i, mode) in ModeLoop.Mode.allCases.enumerated() {
      for (column, mips) in [(ModeLoopColumn.interp, interp[i]), (.interpGeneral, general[i]), (.bochs, bochs[i])] {
        var cell = ModeLoopReport.Cell(column: column, mode: mode, iterations: 100)
        cell.rounds = [mips, mips * 2, mips * 0.5]  // median: mips
        report.cells.append(cell)
      }
    }
    report.unavailable[.qemuTCG] = "not installed (Debian: apt-get install qemu-system-x86)"
    return report
  }

  @Test func ratiosAndTargetsPerMode() {
    let r = report(bochs: [40, 40, 50], interp: [100, 90, 80], general: [40, 30, 60])
    #expect(r.mips(.interp, .real16) == 100)
    #expect(r.ratio(.interp, .real16) == 2.5)
    #expect(r.ratio(.interp, .long64) == 1.6)
    #expect(r.targetMet(.interp, ratio: 2) == false)
    #expect(r.targetMet(.interp, ratio: 1.5) == true)
    #expect(r.targetMet(.interpGeneral, ratio: 1) == false)
    #expect(r.ratio(.qemuTCG, .real16) == nil)
    #expect(r.targetMet(.qemuTCG, ratio: 1) == nil)
  }

  @Test func tableShowsEveryModeTheRatiosAndMissingPeers() {
    let text = report(bochs: [40, 40, 40], interp: [100, 90, 80], general: [40, 40, 40]).text
    let lines = text.split(separator: "\n").map(String.init)
    #expect(lines[1].contains("interp/bochs") && lines[1].contains("general/bochs"))
    #expect(lines.contains { $0.hasPrefix("16-bit ") && $0.contains("2.50x") && $0.contains("not installed") })
    #expect(lines.contains { $0.hasPrefix("16-bit ") && $0.contains("100 (50.0-200)") })
    #expect(lines.contains { $0.hasPrefix("64-bit ") && $0.contains("2.00x") && $0.contains("1.00x") })
    #expect(lines.contains("target: interp at least 2x Bochs in every mode: met"))
    #expect(lines.contains("target: interp general path at least 1x Bochs in every mode: met"))
    #expect(lines.contains { $0.hasPrefix("16-bit: real mode") })
  }

  @Test func aFailedCellSaysSoAndLeavesTheTargetUnmeasured() {
    var r = report(bochs: [40, 40, 40], interp: [100, 90, 80], general: [40, 40, 40])
    r.cells[0].failure = "interp: boom"
    #expect(r.mips(.interp, .real16) == nil)
    #expect(r.targetMet(.interp, ratio: 2) == nil)
    #expect(r.text.contains("interp 16-bit failed: interp: boom"))
    #expect(r.text.contains("target: interp at least 2x Bochs in every mode: not measured"))
  }

  @Test func defaultIterationsFollowTheColumnAndBuild() {
    #expect(ModeLoopColumn.dbt.defaultIterations(mode: .long64) > ModeLoopColumn.dbt.defaultIterations(mode: .real16))
    #expect(
      ModeLoopColumn.interp.defaultIterations(mode: .real16, debugBuild: true)
        < ModeLoopColumn.interp.defaultIterations(mode: .real16))
    #expect(
      ModeLoopColumn.bochs.defaultIterations(mode: .real16, debugBuild: true)
        == ModeLoopColumn.bochs.defaultIterations(mode: .real16))
    #expect(ModeLoopColumn(rawValue: "interp-general") == .interpGeneral)
  }
}
