import Foundation

/// The per-mode table: MIPS per mode and column, and each Trivisor column's ratio to Bochs.
public struct ModeLoopReport: Sendable {
  /// One mode on one column.
  public struct Cell: Sendable {
    public var column: ModeLoopColumn
    public var mode: ModeLoop.Mode
    /// N of the long run.
    public var iterations: UInt32
    /// MIPS per round.
    public var rounds: [Double] = []
    /// Wall times of the 1-iteration and N-iteration runs per round.
    public var shortSeconds: [Double] = []
    public var longSeconds: [Double] = []
    /// Why the cell has no figure.
    public var failure: String?

    public init(column: ModeLoopColumn, mode: ModeLoop.Mode, iterations: UInt32) {
      self.column = column
      self.mode = mode
      self.iterations = iterations
    }

    /// The median over the rounds; nil when none succeeded.
    public var mips: Double? {
      guard failure == nil, !rounds.isEmpty else { return nil }
      let sorted = rounds.sorted()
      let mid = sorted.count / 2
      return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }
  }

  /// What the issue asks of each Trivisor column: at least this multiple of Bochs' MIPS in every mode.
  public static let targets: [(column: ModeLoopColumn, ratio: Double)] = [(.interp, 2), (.interpGeneral, 1)]

  public var modes: [ModeLoop.Mode]
  public var columns: [ModeLoopColumn]
  public var cells: [Cell] = []
  /// Columns that could not run on this host, with the reason.
  public var unavailable: [ModeLoopColumn: String] = [:]
  /// What ran a column (a peer's path and version).
  public var notes: [ModeLoopColumn: String] = [:]

  public init(modes: [ModeLoop.Mode], columns: [ModeLoopColumn]) {
    self.modes = modes
    self.columns = columns
  }

  /// 5 (N - 1) instructions over the wall-time difference, in millions per second; nil when the
  /// long run was not slower.
  public static func mips(iterations n: UInt32, shortSeconds t1: Double, longSeconds tN: Double) -> Double? {
    guard tN > t1, n > 1 else { return nil }
    return Double(ModeLoop.instructions(iterations: n)) / (tN - t1) / 1e6
  }

  public func cell(_ column: ModeLoopColumn, _ mode: ModeLoop.Mode) -> Cell? {
    cells.first { $0.column == column && $0.mode == mode }
  }

  public func mips(_ column: ModeLoopColumn, _ mode: ModeLoop.Mode) -> Double? { cell(column, mode)?.mips }

  /// `column`'s MIPS over `baseline`'s in `mode`, when both were measured.
  public func ratio(_ column: ModeLoopColumn, to baseline: ModeLoopColumn = .bochs, _ mode: ModeLoop.Mode) -> Double? {
    guard let a = mips(column, mode), let b = mips(baseline, mode), b > 0 else { return nil }
    return a / b
  }

  /// Whether `column` reaches `ratio` times Bochs in every mode: nil when some mode lacks a figure.
  public func targetMet(_ column: ModeLoopColumn, ratio: Double) -> Bool? {
    var met = true
    for mode in modes {
      guard let r = self.ratio(column, mode) else { return nil }
      met = met && r >= ratio
    }
    return met
  }

  /// The ratio columns the table shows: each target column that was measured, when Bochs was too.
  var ratioColumns: [ModeLoopColumn] {
    columns.contains(.bochs) ? Self.targets.map(\.column).filter { columns.contains($0) } : []
  }

  /// What a cell shows: MIPS, or why not.
  func text(_ column: ModeLoopColumn, _ mode: ModeLoop.Mode) -> String {
    if let why = unavailable[column] { return why.hasPrefix("not installed") ? "not installed" : "unavailable" }
    guard let cell = cell(column, mode) else { return "-" }
    guard let m = cell.mips else { return "failed" }
    guard cell.rounds.count > 1, let low = cell.rounds.min(), let high = cell.rounds.max() else {
      return Self.format(m)
    }
    return "\(Self.format(m)) (\(Self.format(low))-\(Self.format(high)))"
  }

  static func format(_ mips: Double) -> String {
    mips >= 100 ? String(format: "%.0f", mips) : String(format: "%.1f", mips)
  }

  /// The table, the modes' and columns' explanations and the targets, for the terminal and docs.
  public var text: String {
    var lines: [String] = []
    lines.append(
      "Per-mode ALU loop (guests/testguests/modeloop.S: add, xor, rol, dec, jnz), MIPS = 5 (N - 1) / (t(N) - t(1)); "
        + "every figure from this run"
        + (cells.contains { $0.rounds.count > 1 } ? "; median (min-max) of the rounds" : ""))
    let ratioHeaders = ratioColumns.map { ($0 == .interp ? "interp" : "general") + "/bochs" }
    let headers = ["mode"] + columns.map(\.rawValue) + ratioHeaders
    var rows: [[String]] = []
    for mode in modes {
      var row = ["\(mode.rawValue)-bit"] + columns.map { text($0, mode) }
      row += ratioColumns.map { c in ratio(c, mode).map { String(format: "%.2fx", $0) } ?? "-" }
      rows.append(row)
    }
    let widths = headers.indices.map { i in max(headers[i].count, rows.map { $0[i].count }.max() ?? 0) }
    let pad = { (s: String, w: Int, left: Bool) in
      let fill = String(repeating: " ", count: max(0, w - s.count))
      return left ? s + fill : fill + s
    }
    let render = { (row: [String]) in
      row.indices.map { pad(row[$0], widths[$0], $0 == 0) }.joined(separator: " | ")
    }
    lines.append(render(headers))
    lines.append(String(repeating: "-", count: widths.reduce(0, +) + 3 * (widths.count - 1)))
    lines += rows.map(render)
    for mode in modes { lines.append("\(mode.rawValue)-bit: \(mode.explanation)") }
    for column in columns {
      var line = "\(column): \(column.summary)"
      if let note = notes[column] { line += "; \(note)" }
      if let why = unavailable[column] { line += "; \(why)" }
      let ns = modes.compactMap { cell(column, $0)?.iterations }
      if let n = ns.first, unavailable[column] == nil {
        line += Set(ns).count == 1 ? "; N = \(n)" : "; N = " + ns.map(String.init).joined(separator: "/")
      }
      lines.append(line)
    }
    for cell in cells {
      if let why = cell.failure { lines.append("\(cell.column) \(cell.mode.rawValue)-bit failed: \(why)") }
    }
    for (column, ratio) in Self.targets where columns.contains(column) && columns.contains(.bochs) {
      let who = column == .interp ? "interp" : "interp general path"
      let verdict: String
      switch targetMet(column, ratio: ratio) {
      case .some(true): verdict = "met"
      case .some(false): verdict = "NOT met"
      case .none: verdict = "not measured"
      }
      lines.append("target: \(who) at least \(PeerProcess.shortNumber(ratio))x Bochs in every mode: \(verdict)")
    }
    return lines.joined(separator: "\n")
  }
}
