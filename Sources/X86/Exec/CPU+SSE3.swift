/// The SSE3 instructions of map 1 (SDM vol. 2): ADDSUBPS/PD (F2/66 0F D0), HADDPS/PD (F2/66 0F
/// 7C), HSUBPS/PD (F2/66 0F 7D), MOVSLDUP (F3 0F 12), MOVSHDUP (F3 0F 16), MOVDDUP (F2 0F 12) and
/// LDDQU (F2 0F F0). The arithmetic goes through `SoftFloat` and the SSE float code's exception
/// handling (`results`), so MXCSR's rounding, DAZ, FTZ, flags and #XM behave as for ADDPS.
/// FISTTP (x87) and MONITOR/MWAIT (system) are elsewhere.
extension CPU {
  /// Runs `ins` if it is one of the SSE3 forms above; false otherwise.
  func executeSSE3(_ ins: inout DecodedInstruction, ea: UInt64, column: Int) throws(Fault) -> Bool {
    let r = sseReg(ins)
    switch (ins.opcode, column) {
    case (0xD0, 1), (0xD0, 3), (0x7C, 1), (0x7C, 3), (0x7D, 1), (0x7D, 3):
      try requireSSE()
      let f = SoftFloat.Format(bits: column == 1 ? 64 : 32)
      let count = 128 / f.bits
      let d = lanes(xmm(r), f, count: count)
      let s = lanes(try sseSource(&ins, ea), f, count: count)
      let control = SoftFloat.Control(mxcsr: mxcsr)
      var outcomes: [SoftFloat.Outcome] = []
      outcomes.reserveCapacity(count)
      if ins.opcode == 0xD0 {
        // ADDSUB: even lanes subtract, odd lanes add.
        for i in 0..<count {
          outcomes.append(SoftFloat.compute(i & 1 == 0 ? .subtract : .add, d[i], s[i], f, control))
        }
      } else {
        // HADD/HSUB: adjacent pairs of the destination, then of the source.
        let operation: SoftFloat.Operation = ins.opcode == 0x7C ? .add : .subtract
        for i in 0..<count {
          let from = i < count / 2 ? d : s
          let k = 2 * (i % (count / 2))
          outcomes.append(SoftFloat.compute(operation, from[k], from[k + 1], f, control))
        }
      }
      setXMM(r, withLanes((0, 0), try results(outcomes), f))
    case (0x12, 2), (0x16, 2):  // MOVSLDUP, MOVSHDUP: the even (odd) singles duplicated
      try requireSSE()
      let s = SSELanes.dwords(try sseSource(&ins, ea))
      let k = ins.opcode == 0x12 ? 0 : 1
      setXMM(r, SSELanes.value(SIMD4(s[k], s[k], s[k + 2], s[k + 2])))
    case (0x12, 3):  // MOVDDUP xmm, xmm/m64
      try requireSSE()
      let low = ins.modrmIsRegister ? xmm(sseRM(ins)).0 : try sseSource(&ins, ea, size: 8).0
      setXMM(r, (low, low))
    case (0xF0, 3):  // LDDQU xmm, m128 (no alignment requirement)
      guard !ins.modrmIsRegister else { throw Fault.invalidOpcode }
      try requireSSE()
      setXMM(r, try sseSource(&ins, ea, unaligned: true))
    default:
      return false
    }
    return true
  }
}
