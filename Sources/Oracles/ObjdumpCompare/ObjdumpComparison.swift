import X86

/// How our decoder/disassembler and llvm-objdump disagreed on one instruction.
public enum ObjdumpDisagreement: String, Sendable, CaseIterable {
  case length = "length differs"
  case mnemonic = "mnemonic differs"
  case text = "operands differ"
  case onlyObjdumpDecodes = "only llvm-objdump decodes it"
  case onlyModelDecodes = "only the model decodes it"
}

/// One instruction where the two disagree.
public struct ObjdumpMismatch: Sendable, CustomStringConvertible {
  public var kind: ObjdumpDisagreement
  public var bytes: [UInt8]
  public var ours: String
  public var theirs: String

  public var description: String {
    "\(kind.rawValue): \(bytes.map { hex2($0) }.joined(separator: " ")) | model: \(ours) | llvm-objdump: \(theirs)"
  }
}

/// Totals of a comparison run.
public struct ObjdumpReport: Sendable {
  public var compared = 0
  public var agreed = 0
  /// Both say "not an instruction".
  public var bothInvalid = 0
  /// Documented differences, by reason.
  public var tolerated: [String: Int] = [:]
  public var mismatches: [ObjdumpMismatch] = []

  public var mismatchCount: Int { mismatches.count }

  public func summary(label: String) -> String {
    var lines = [
      "\(label): \(compared) compared, \(agreed) agree (\(bothInvalid) invalid for both), "
        + "\(tolerated.values.reduce(0, +)) documented differences, \(mismatches.count) mismatches"
    ]
    for (reason, n) in tolerated.sorted(by: { $0.value > $1.value }) { lines.append("  tolerated \(n): \(reason)") }
    for kind in ObjdumpDisagreement.allCases {
      let n = mismatches.filter { $0.kind == kind }.count
      if n > 0 { lines.append("  \(kind.rawValue): \(n)") }
    }
    var causes: [String: Int] = [:]
    for m in mismatches {
      let ours = ObjdumpComparison.mnemonic(m.ours)
      let theirs = ObjdumpComparison.mnemonic(m.theirs)
      causes["\(m.kind.rawValue): model '\(ours)' / llvm-objdump '\(theirs)'", default: 0] += 1
    }
    for (cause, n) in causes.sorted(by: { $0.value > $1.value }).prefix(12) { lines.append("  top \(n): \(cause)") }
    return lines.joined(separator: "\n")
  }
}

/// Compares the X86 decoder and disassembler with llvm-objdump.
public enum ObjdumpComparison {
  /// Words llvm-objdump or the model may print before the mnemonic.
  static let prefixWords: Set<String> = [
    "lock", "rep", "repe", "repz", "repne", "repnz", "data16", "data32", "addr16", "addr32", "cs", "ds", "es", "ss",
    "fs", "gs", "notrack", "bnd", "xacquire", "xrelease", "rex", "rex.w", "rex.r", "rex.x", "rex.b", "rex.wb", "rex.wr",
    "rex.wx", "rex.rb", "rex.rx", "rex.xb", "rex.rxb", "rex.wrb", "rex.wrx", "rex.wxb", "rex.wrxb",
  ]

  /// The mnemonic: the first word that is not a prefix, lower-cased, through the spelling table.
  static func mnemonic(_ text: String) -> String {
    let words = text.lowercased().split(whereSeparator: { $0 == " " || $0 == "\t" })
    let word = words.first(where: { !prefixWords.contains(String($0)) }).map(String.init) ?? ""
    return KnownDifferences.spellings[word] ?? word
  }

  static func objdumpInvalid(_ text: String) -> Bool { text.contains("<unknown>") || text.contains("(bad)") }

  /// Folds llvm-objdump's bare prefix lines ("lock", "rep", "data16" printed alone) into the
  /// instruction that follows, as the CPU (and the model) treat them.
  static func firstInstruction(_ lines: [ObjdumpLine]) -> ObjdumpLine? {
    var prefixBytes: [UInt8] = []
    var prefixText = ""
    for line in lines {
      let words = line.text.lowercased().split(whereSeparator: { $0 == " " || $0 == "\t" })
      if !words.isEmpty, words.allSatisfy({ prefixWords.contains(String($0)) }) {
        prefixBytes += line.bytes
        prefixText += words.joined(separator: " ") + " "
        continue
      }
      return ObjdumpLine(bytes: prefixBytes + line.bytes, text: prefixText + line.text)
    }
    return nil
  }

  /// Compares one instruction. `theirs` is what llvm-objdump printed for `bytes`.
  /// With `compareText`, the whole text must agree (operands too, llvm's comments and symbol
  /// annotations aside), disassembled at `theirs.address`.
  public static func compare(
    bytes: [UInt8], objdump theirs: ObjdumpLine?, mode: CodeMode, compareText: Bool = false,
    into report: inout ObjdumpReport
  ) {
    report.compared += 1
    let ours = Disassembler.disassemble(bytes, mode: mode, address: compareText ? theirs?.address ?? 0 : 0)
    let theirText = theirs.map { $0.text.replacingTabs() } ?? "<nothing>"
    let theirValid = theirs.map { !objdumpInvalid($0.text) } ?? false
    var kind: ObjdumpDisagreement?
    switch (ours, theirValid) {
    case (nil, false):
      report.bothInvalid += 1
      report.agreed += 1
      return
    case (nil, true): kind = .onlyObjdumpDecodes
    case (.some, false): kind = .onlyModelDecodes
    case (.some(let o), true):
      if o.length != theirs?.bytes.count {
        kind = .length
      } else if mnemonic(o.text) != mnemonic(theirText) {
        kind = .mnemonic
      } else if compareText && o.text.replacingTabs() != withoutAnnotations(theirText) {
        kind = .text
      }
    }
    guard let kind else {
      report.agreed += 1
      return
    }
    let length = theirs?.bytes.count ?? ours?.length ?? bytes.count
    let shown = Array(bytes.prefix(max(length, ours?.length ?? 0)))
    if let reason = KnownDifferences.reason(
      kind, bytes: shown, mode: mode, ours: ours?.text.replacingTabs() ?? "", theirs: theirText)
    {
      report.tolerated[reason, default: 0] += 1
      return
    }
    report.mismatches.append(
      ObjdumpMismatch(
        kind: kind, bytes: shown, ours: ours.map { "\($0.text) (\($0.length) bytes)" } ?? "invalid",
        theirs: theirValid ? "\(theirText) (\(theirs?.bytes.count ?? 0) bytes)" : theirText))
  }

  /// llvm-objdump's text without its comments ("# xmm0 = ...") and symbol annotations ("<f+0x10>").
  static func withoutAnnotations(_ text: String) -> String {
    var t = text
    if let hash = t.range(of: " #") { t = String(t[..<hash.lowerBound]) }
    while let open = t.range(of: " <"), let close = t.range(of: ">", range: open.upperBound..<t.endIndex) {
      t.removeSubrange(open.lowerBound..<close.upperBound)
    }
    return t.replacingTabs()
  }

  /// Random byte sequences biased toward prefixes, escapes and ModRM forms.
  public static func randomSamples(count: Int, mode: CodeMode, seed: UInt64) -> [[UInt8]] {
    var rng = RandomSource(seed: seed)
    let legacy: [UInt8] = [0x66, 0x67, 0xF2, 0xF3, 0xF0, 0x2E, 0x26, 0x36, 0x3E, 0x64, 0x65]
    return (0..<count).map { _ in
      var s: [UInt8] = []
      while rng.chance(0.25) { s.append(rng.pick(legacy)) }
      if mode == .bits64 && rng.chance(0.4) { s.append(0x40 | UInt8(rng.below(16))) }
      switch rng.below(10) {
      case 0...2: s += [0x0F]
      case 3: s += [0x0F, rng.chance(0.5) ? 0x38 : 0x3A]
      default: break
      }
      while s.count < 15 { s.append(UInt8(truncatingIfNeeded: rng.next())) }
      return s
    }
  }

  /// Runs random samples through both and compares the first instruction of each.
  public static func compareRandom(
    runner: ObjdumpRunner, count: Int, mode: CodeMode, seed: UInt64
  ) throws(ObjdumpError) -> ObjdumpReport {
    let samples = randomSamples(count: count, mode: mode, seed: seed)
    let listings = try runner.disassembleSamples(samples, mode: mode)
    var report = ObjdumpReport()
    for (sample, lines) in zip(samples, listings) {
      compare(bytes: sample, objdump: firstInstruction(lines), mode: mode, into: &report)
    }
    return report
  }

  /// Compares the instructions of an ELF file's `.text` section (up to `limit`, spread over it),
  /// length and whole text.
  public static func compareBinary(runner: ObjdumpRunner, path: String, limit: Int, mode: CodeMode = .bits64)
    throws(ObjdumpError) -> ObjdumpReport
  {
    var report = ObjdumpReport()
    var lines = try runner.disassembleTextSection(path, mode: mode).lines
    if lines.count > limit {
      // Spread the sample over the whole binary.
      let step = lines.count / limit
      lines = stride(from: 0, to: lines.count, by: step).prefix(limit).map { lines[$0] }
    }
    for line in lines {
      compare(bytes: line.bytes, objdump: line, mode: mode, compareText: true, into: &report)
    }
    return report
  }
}

extension String {
  func replacingTabs() -> String {
    split(whereSeparator: { $0 == "\t" || $0 == " " }).joined(separator: " ")
  }
}
