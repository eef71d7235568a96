import Foundation
import Launcher
import VMM

/// `trivisor bench cpu --peers`' per-mode measurement: for each mode and column, the loop run with
/// 1 and with N iterations; MIPS = 5 (N - 1) / (t(N) - t(1)), so each tool's own startup (process
/// start, BIOS, loading, mode switches, teardown) cancels out. Every round measures every mode on
/// every column, one after the other, so every figure of the table comes from the same run.
public struct ModeLoopBenchmark {
  public var modes: [ModeLoop.Mode]
  public var columns: [ModeLoopColumn]
  /// N per column, overriding `ModeLoopColumn.defaultIterations`.
  public var iterations: [ModeLoopColumn: UInt32]
  /// Pairs of runs per cell (the median is reported).
  public var rounds: Int
  /// Seconds any single run may take.
  public var timeoutSeconds: Double
  /// Whether this is a debug build (smaller default N for Trivisor's engines).
  public var debugBuild: Bool

  public init(
    modes: [ModeLoop.Mode] = ModeLoop.Mode.allCases, columns: [ModeLoopColumn] = ModeLoopColumn.allCases,
    iterations: [ModeLoopColumn: UInt32] = [:], rounds: Int = 1, timeoutSeconds: Double = 60, debugBuild: Bool = false
  ) {
    self.modes = modes
    self.columns = columns
    self.iterations = iterations
    self.rounds = rounds
    self.timeoutSeconds = timeoutSeconds
    self.debugBuild = debugBuild
  }

  /// N for `column` in `mode`.
  public func iterations(_ column: ModeLoopColumn, _ mode: ModeLoop.Mode) -> UInt32 {
    iterations[column] ?? column.defaultIterations(mode: mode, debugBuild: debugBuild)
  }

  /// One way to run the loop: returns the wall time of a run of `iterations` in `mode`.
  typealias Runner = (ModeLoop.Mode, UInt32) throws(ModeLoopError) -> Double

  /// Measures every cell, reporting progress lines through `progress`.
  public func run(progress: (String) -> Void) -> ModeLoopReport {
    var report = ModeLoopReport(modes: modes, columns: columns)
    var runners: [ModeLoopColumn: Runner] = [:]
    for column in columns {
      switch runner(column) {
      case .success(let (run, note)):
        runners[column] = run
        if let note { report.notes[column] = note }
      case .failure(let why):
        report.unavailable[column] = why.description
        progress("\(column): \(why)")
      }
    }
    // Round by round, each round over every mode and column, so that a change in the host's
    // load during the run touches every column alike.
    for mode in modes {
      for column in columns where runners[column] != nil {
        report.cells.append(ModeLoopReport.Cell(column: column, mode: mode, iterations: iterations(column, mode)))
      }
    }
    for round in 1...rounds {
      for index in report.cells.indices where report.cells[index].failure == nil {
        let cell = report.cells[index]
        guard let run = runners[cell.column] else { continue }
        do throws(ModeLoopError) {
          let (t1, tN, mips) = try measure(cell.column, cell.mode, iterations: cell.iterations, run: run)
          report.cells[index].shortSeconds.append(t1)
          report.cells[index].longSeconds.append(tN)
          report.cells[index].rounds.append(mips)
          progress(
            String(
              format: "%@ %d-bit: round %d/%d: %.3f s (1 iteration), %.3f s (N = %u): %.1f MIPS", cell.column.rawValue,
              cell.mode.rawValue, round, rounds, t1, tN, cell.iterations, mips))
        } catch {
          report.cells[index].failure = error.description
          progress("\(cell.column) \(cell.mode.rawValue)-bit: FAILED: \(error)")
        }
      }
    }
    return report
  }

  /// One pair of runs: the wall times of 1 and `n` iterations, and the MIPS they give.
  private func measure(
    _ column: ModeLoopColumn, _ mode: ModeLoop.Mode, iterations n: UInt32, run: Runner
  ) throws(ModeLoopError) -> (Double, Double, Double) {
    let t1 = try run(mode, 1)
    let tN = try run(mode, n)
    guard let mips = ModeLoopReport.mips(iterations: n, shortSeconds: t1, longSeconds: tN) else {
      throw ModeLoopError(
        String(format: "the %u-iteration run (%.3f s) was not slower than the 1-iteration run (%.3f s): ", n, tN, t1)
          + "raise --iterations \(column)=N")
    }
    return (t1, tN, mips)
  }

  /// How to run `column`, with a note on the tool (its version), or why it cannot run here.
  private func runner(_ column: ModeLoopColumn) -> Result<(Runner, String?), ModeLoopError> {
    let timeout = timeoutSeconds
    switch column {
    case .interp, .interpGeneral, .dbt:
      let name = column == .dbt ? "dbt" : "interp"
      guard let entry = EngineRegistry.entries.first(where: { $0.name == name }) else {
        return .failure(ModeLoopError("no engine '\(name)' in this build"))
      }
      if let why = entry.unavailableReason() { return .failure(ModeLoopError("unavailable: \(why)")) }
      let run: Runner = { (mode, n) throws(ModeLoopError) in
        let engine: any Engine
        if column == .interpGeneral {
          engine = GeneralPathEngine()
        } else {
          do { engine = try entry.make(false) } catch { throw ModeLoopError("\(name): \(error)") }
        }
        return try EngineLoopRun.run(engine: engine, mode: mode, iterations: n, timeoutSeconds: timeout).wallSeconds
      }
      return .success((run, nil))
    case .bochs:
      return BochsPeer.locate().map { bochs in
        let run: Runner = { (mode, n) throws(ModeLoopError) in
          try bochs.run(floppyImage: ModeLoop.floppyImage(mode: mode, iterations: n), timeoutSeconds: timeout)
        }
        return (run, [bochs.executable, bochs.version()].compactMap { $0 }.joined(separator: ", "))
      }
    case .qemuTCG:
      return QEMUFloppyPeer.locate().map { qemu in
        let run: Runner = { (mode, n) throws(ModeLoopError) in
          try qemu.run(floppyImage: ModeLoop.floppyImage(mode: mode, iterations: n), timeoutSeconds: timeout)
        }
        return (run, [qemu.executable, qemu.version()].compactMap { $0 }.joined(separator: ", "))
      }
    }
  }
}
