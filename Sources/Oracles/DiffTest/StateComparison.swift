/// One field where the host and the model disagree.
public struct FieldDifference: Sendable, CustomStringConvertible {
  public var field: String
  public var native: String
  public var model: String

  public var description: String { "\(field): native \(native), model \(model)" }
}

/// Compares a native and a model run.
public enum StateComparison {
  /// The differing fields; empty when the runs agree. `undefinedFlags` are ignored in RFLAGS;
  /// `approximate` compares XMM registers as singles with the tolerance of RCPPS & co.
  /// (`approximatelyEqual`) and the x87 registers within an ulp, FSW without C1, for the
  /// transcendentals (`withinAnULP`).
  public static func differences(
    native: RunResult, model: RunResult, undefinedFlags: UInt64, approximate: Bool = false
  ) -> [FieldDifference] {
    var out: [FieldDifference] = []
    let compat = native.state.isCompatibility
    switch (native.outcome, model.outcome) {
    case (.completed, .completed): break
    // Page faults must also agree on the error code's P, W/R and U/S bits (the model treats memory
    // outside the code page and sandbox as not present, as the host does) and on the address (CR2).
    case (.fault(14, let a), .fault(14, let b)) where a & 7 == b & 7:
      if native.faultAddress != model.faultAddress {
        out.append(FieldDifference(field: "cr2", native: hex(native.faultAddress), model: hex(model.faultAddress)))
      }
    // In compatibility mode the error codes of #TS, #NP, #SS and #GP (a selector or 0) are compared too.
    case (.fault(let a, let x), .fault(let b, let y)) where a == b && a != 14 && (!compat || x == y): break
    default:
      out.append(
        FieldDifference(field: "outcome", native: native.outcome.description, model: model.outcome.description))
    }
    for (i, name) in MachineState.segmentNames.enumerated()
    where i < native.state.segments.count && i < model.state.segments.count
      && native.state.segments[i] != model.state.segments[i]
    {
      out.append(
        FieldDifference(
          field: name, native: hex(UInt64(native.state.segments[i])), model: hex(UInt64(model.state.segments[i]))))
    }
    // In compatibility mode RSP is compared in its low 32 bits: after any return from the kernel
    // to a 16-bit stack (an interrupt during the test, a page fault it resolves) Linux's espfix64
    // path leaves bits 63:32 of RSP holding the espfix stack's address. Compatibility-mode code
    // cannot see those bits; every other register is compared whole.
    let rspMask: UInt64 = compat ? 0xFFFF_FFFF : ~0
    for i in 0..<16 where (native.state.gpr[i] ^ model.state.gpr[i]) & (i == 4 ? rspMask : ~0) != 0 {
      out.append(
        FieldDifference(
          field: MachineState.registerNames[i], native: hex(native.state.gpr[i]), model: hex(model.state.gpr[i])))
    }
    if native.state.rip != model.state.rip {
      out.append(FieldDifference(field: "rip", native: hex(native.state.rip), model: hex(model.state.rip)))
    }
    let mask = FlagBits.compared & ~undefinedFlags
    let flagDelta = (native.state.rflags ^ model.state.rflags) & mask
    if flagDelta != 0 {
      out.append(
        FieldDifference(
          field: "rflags (\(FlagBits.names(flagDelta)) differ; ignored: \(FlagBits.names(undefinedFlags)))",
          native: hex(native.state.rflags & mask), model: hex(model.state.rflags & mask)))
    }
    let n = native.state.sandbox
    let m = model.state.sandbox
    let differing = n.indices.filter { $0 < m.count && n[$0] != m[$0] }
    if !differing.isEmpty {
      let shown = differing.prefix(8).map { "+\(hex(UInt64($0)))" }.joined(separator: " ")
      out.append(
        FieldDifference(
          field: "sandbox (\(differing.count) bytes differ at \(shown))",
          native: differing.prefix(8).map { hex2(n[$0]) }.joined(separator: " "),
          model: differing.prefix(8).map { hex2(m[$0]) }.joined(separator: " ")))
    }
    out += fxDifferences(native: native.state, model: model.state, approximate: approximate)
    return out
  }

  /// XMM0-15, MXCSR and the x87 state MMX changes (`mmxDifferences`) when both states carry a
  /// full FXSAVE64 image; nothing when either image is empty.
  static func fxDifferences(native: MachineState, model: MachineState, approximate: Bool = false) -> [FieldDifference] {
    guard native.fx.count == FXLayout.size, model.fx.count == FXLayout.size else { return [] }
    var out: [FieldDifference] = []
    for i in 0..<16 {
      guard let n = native.xmmBytes(i), let m = model.xmmBytes(i), n != m else { continue }
      if approximate && approximatelyEqual(n, m) { continue }
      out.append(FieldDifference(field: "xmm\(i)", native: hex128(n), model: hex128(m)))
    }
    if let n = native.mxcsr, let m = model.mxcsr, n != m {
      out.append(FieldDifference(field: "mxcsr", native: hex(UInt64(n)), model: hex(UInt64(m))))
    }
    out += mmxDifferences(native: native, model: model, approximate: approximate)
    return out
  }

  /// A 16-byte little-endian register as one hex number, most significant byte first.
  static func hex128(_ bytes: ArraySlice<UInt8>) -> String {
    "0x" + bytes.reversed().map { hex2($0) }.joined()
  }

  /// The x87 state: FCW, FSW (TOP, condition codes, exceptions), the abridged tag byte and the
  /// 10 bytes of each register slot (STi/MMi). FOP, FIP and FDP are not compared (the model does
  /// not track them yet). `approximate`: registers within an ulp (`withinAnULP`), FSW.C1 (which
  /// says whether a result was rounded up) not compared.
  static func mmxDifferences(native: MachineState, model: MachineState, approximate: Bool = false) -> [FieldDifference]
  {
    var out: [FieldDifference] = []
    var n = native.fx
    var m = model.fx
    if approximate {
      n[FXLayout.fsw + 1] &= ~0x02
      m[FXLayout.fsw + 1] &= ~0x02
    }
    for (field, offset, count) in [
      ("fcw", FXLayout.fcw, 2), ("fsw", FXLayout.fsw, 2), ("abridged ftw", FXLayout.ftw, 1),
    ] {
      let a = n[offset..<offset + count]
      let b = m[offset..<offset + count]
      if a != b { out.append(FieldDifference(field: field, native: hex128(a), model: hex128(b))) }
    }
    for i in 0..<8 {
      let a = n[FXLayout.st(i)..<FXLayout.st(i) + 10]
      let b = m[FXLayout.st(i)..<FXLayout.st(i) + 10]
      if a == b || (approximate && withinAnULP(a, b)) { continue }
      out.append(FieldDifference(field: "st\(i)/mm\(i)", native: hex128(a), model: hex128(b)))
    }
    return out
  }

  /// Two 80-bit values of one sign, neither a NaN nor an infinity, next to each other: their
  /// magnitudes as (exponent, fraction) integers, which count up through the denormals and
  /// every binade, differ by at most one. The x87 transcendentals are not correctly rounded
  /// (AMD's and Intel's differ in the last bit), so a model within an ulp of the host is as
  /// good as another CPU.
  static func withinAnULP(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Bool {
    func parts(_ v: ArraySlice<UInt8>) -> (sign: UInt8, exponent: Int, key: UInt128) {
      let bytes = Array(v)
      let significand = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[$1]) << (8 * UInt64($1)) }
      let exponent = Int(bytes[8]) | Int(bytes[9] & 0x7F) << 8
      let key = UInt128(exponent) << 63 | UInt128(significand & ~(1 << 63))
      return (bytes[9] & 0x80, exponent, key)
    }
    let x = parts(a)
    let y = parts(b)
    guard x.sign == y.sign, x.exponent != 0x7FFF, y.exponent != 0x7FFF else { return false }
    return (x.key > y.key ? x.key - y.key : y.key - x.key) <= 1
  }

  /// Two XMM registers whose four singles are each equal or, both normal and of one sign, within
  /// 3 * 2^-12 of each other relative to the host's: two results of RCPPS/RSQRTPS that both keep
  /// the SDM's bound (1.5 * 2^-12 from the exact value) are. A zero against a normal of its sign
  /// within 2^-10 of the smallest normal passes too: results there are flushed ("tiny results
  /// are flushed to zero") by whichever side's approximation fell below the normal range.
  static func approximatelyEqual(_ native: ArraySlice<UInt8>, _ model: ArraySlice<UInt8>) -> Bool {
    let n = Array(native)
    let m = Array(model)
    for lane in 0..<4 {
      let a = (0..<4).reduce(UInt32(0)) { $0 | UInt32(n[4 * lane + $1]) << (8 * UInt32($1)) }
      let b = (0..<4).reduce(UInt32(0)) { $0 | UInt32(m[4 * lane + $1]) << (8 * UInt32($1)) }
      if a == b { continue }
      let x = Float(bitPattern: a)
      let y = Float(bitPattern: b)
      // At the bottom of the normal range one side may have flushed a result the other kept.
      let smallest = Double(Float.leastNormalMagnitude) * (1 + 0x1p-10)
      if x.sign == y.sign
        && ((x == 0 && y.isNormal && abs(Double(y)) < smallest)
          || (y == 0 && x.isNormal && abs(Double(x)) < smallest))
      {
        continue
      }
      guard x.isNormal, y.isNormal, x.sign == y.sign else { return false }
      if abs(Double(x) - Double(y)) > 3.01 * 0x1p-12 * abs(Double(x)) { return false }
    }
    return true
  }
}
