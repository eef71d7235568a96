/// The x87 compares (FCOM, FUCOM, FCOMI, FICOM, FTST, FXAM), FCMOVcc, the rounded stores (FST
/// m32/m64, FIST, FISTP, FISTTP), the constants, FBLD/FBSTP and the environment (FSTENV, FLDENV,
/// FSAVE, FRSTOR).
extension CPU {
  /// The memory forms; false when the encoding is not one of this group's.
  func executeX87TransferMemory(_ ins: DecodedInstruction, reg: Int, seg: Int, ea: UInt64) throws(Fault) -> Bool {
    false
  }

  /// The register forms; false when the encoding is not one of this group's.
  func executeX87TransferRegister(_ ins: DecodedInstruction, reg: Int, rm: Int) throws(Fault) -> Bool {
    false
  }
}
