/// The `rcp` class: RCPPS, RCPSS, RSQRTPS and RSQRTSS. Their results are approximations whose
/// bits differ between vendors (the SDM only bounds the relative error by 1.5 * 2^-12), so a
/// program with them compares XMM registers lane by lane with a tolerance (`StateComparison`):
/// equal bits, or two normal singles of one sign within 3 * 2^-12 of each other. So that each
/// compared lane is at most one approximation away from the host's, the class reads XMM0-7 and
/// memory and writes only XMM8-15; run it alone (`--class rcp`).
extension ProgramGenerator {
  mutating func emitApproximation() {
    let forms: [(UInt8?, UInt8)] = [(nil, 0x53), (0xF3, 0x53), (nil, 0x52), (0xF3, 0x52)]
    let (prefix, opcode) = rng.pick(forms)
    let scalar = prefix != nil
    let rm: RMOperand =
      rng.chance(0.3) ? sseMemory(bytes: scalar ? 4 : 16, aligned: !scalar, .rcp) : .register(rng.below(8))
    var e = Encoder()
    e.emit(prefixes: prefix.map { [$0] } ?? [], opcode: [0x0F, opcode], reg: 8 + rng.below(8), rm: rm)
    add(e.bytes, .rcp)
  }
}
