/// One field where the host and the model disagree.
public struct FieldDifference: Sendable, CustomStringConvertible {
  public var field: String
  public var native: String
  public var model: String

  public var description: String { "\(field): native \(native), model \(model)" }
}

/// Compares a native and a model run.
public enum StateComparison {
  /// The differing fields; empty when the runs agree. `undefinedFlags` are ignored in RFLAGS.
  public static func differences(native: RunResult, model: RunResult, undefinedFlags: UInt64) -> [FieldDifference] {
    var out: [FieldDifference] = []
    switch (native.outcome, model.outcome) {
    case (.completed, .completed): break
    // Page faults must also agree on the error code's P, W/R and U/S bits (the model treats memory
    // outside the code page and sandbox as not present, as the host does).
    case (.fault(14, let a), .fault(14, let b)) where a & 7 == b & 7: break
    case (.fault(let a, _), .fault(let b, _)) where a == b && a != 14: break
    default:
      out.append(
        FieldDifference(field: "outcome", native: native.outcome.description, model: model.outcome.description))
    }
    for i in 0..<16 where native.state.gpr[i] != model.state.gpr[i] {
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
    return out
  }
}
