/// The x87 arithmetic: FADD, FSUB(R), FMUL, FDIV(R) and their integer and popping forms, FSQRT,
/// FPREM, FPREM1, FRNDINT, FSCALE, FXTRACT and the transcendentals.
extension CPU {
  /// The memory forms; false when the encoding is not one of this group's.
  func executeX87ArithmeticMemory(_ ins: DecodedInstruction, reg: Int, seg: Int, ea: UInt64) throws(Fault) -> Bool {
    false
  }

  /// The register forms; false when the encoding is not one of this group's.
  func executeX87ArithmeticRegister(_ ins: DecodedInstruction, reg: Int, rm: Int) throws(Fault) -> Bool {
    false
  }
}
