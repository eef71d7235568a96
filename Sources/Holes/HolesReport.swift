import Foundation

/// The `trivisor holes` table: instruction rows × engine columns, and the host's UMIP.
public struct HolesReport: Sendable {
  /// The engines' columns, in the order asked for.
  public var columns: [Holes.Column]
  /// The host's UMIP.
  public var umip: HostUMIP

  /// A report of `columns` on a host with `umip`.
  public init(columns: [Holes.Column], umip: HostUMIP) {
    self.columns = columns
    self.umip = umip
  }

  /// The table as text: one row per probe, one column per engine, then the skipped engines and
  /// the UMIP note.
  public func text() -> String {
    let header = ["instruction"] + columns.map(\.engine)
    var rows = [header]
    for probe in HoleProbe.allCases {
      rows.append([probe.name] + columns.map { $0.skipped != nil ? "skipped" : ($0.classes[probe]?.rawValue ?? "-") })
    }
    let widths = header.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
    var lines = rows.map { row in
      row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        .trimmingCharacters(in: .whitespaces)
    }
    for column in columns {
      if let why = column.skipped { lines.append("\(column.engine): skipped, \(why)") }
      for (probe, why) in (column.results?.stops ?? [:]).sorted(by: { $0.key < $1.key }) {
        lines.append("\(column.engine): \(HoleProbe(rawValue: probe)?.name ?? "probe \(probe)") faulted: \(why)")
      }
    }
    lines.append(umip.summary)
    lines.append(contentsOf: Self.umipNote)
    lines.append(umip.trapExpectation)
    return lines.joined(separator: "\n") + "\n"
  }

  /// What UMIP does, for the output and docs.
  public static let umipNote = [
    "UMIP matters only for guest code at real ring 3 (the trap engine): without it SGDT, SIDT,",
    "SLDT, SMSW and STR there store the host's tables and selectors (leak); with it they fault and a",
    "monitor can emulate them. interp, dbt and kvm do not run the guest kernel at real ring 3, so their",
    "columns are the same with and without UMIP.",
  ]

  /// The report as JSON: per engine the classes by instruction, the raw values, or the skip reason.
  public func json() throws -> String {
    /// One cell: the class, the raw quadwords and a stop's reason.
    struct Probe: Encodable {
      let instruction: String
      let result: String
      let value: String?
      let aux: String?
      let stop: String?
    }
    /// One engine's column, or why it was skipped.
    struct Column: Encodable {
      let engine: String
      let skipped: String?
      let probes: [Probe]
    }
    /// The whole report.
    struct Document: Encodable {
      let umip: HostUMIP
      let engines: [Column]
    }
    let document = Document(
      umip: umip,
      engines: columns.map { column in
        Column(
          engine: column.engine, skipped: column.skipped,
          probes: column.skipped != nil
            ? []
            : HoleProbe.allCases.map { probe in
              let o = column.results?.observations[probe.rawValue]
              return Probe(
                instruction: probe.name, result: column.classes[probe]?.rawValue ?? "not-run",
                value: o.map { "0x" + String($0.value, radix: 16) }, aux: o.map { "0x" + String($0.aux, radix: 16) },
                stop: column.results?.stops[probe.rawValue])
            })
      })
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return String(decoding: try encoder.encode(document), as: UTF8.self) + "\n"
  }
}
