/// Dispatch of the three-byte opcode maps 0F 38 and 0F 3A (decoded as `Operation.sse` with map 2
/// and 3): SSSE3 (`CPU+SSSE3.swift`, with or without 66), SSE4.1 (`CPU+SSE41.swift`) and SSE4.2
/// (`CPU+SSE42.swift`, CRC32 with F2). Every other opcode or prefix raises #UD (AES, SHA,
/// PCLMULQDQ, GFNI and the VMX/INVPCID forms among them).
extension CPU {
  /// Runs an instruction of map 0F 38 (`column`: the mandatory prefix, as `SSEOperandShapes`).
  func executeMap38(_ ins: inout DecodedInstruction, ea: UInt64, column: Int) throws(Fault) {
    let op = ins.opcode
    if column == 3 && (op == 0xF0 || op == 0xF1) { return try executeCRC32(&ins, ea: ea) }
    switch op {
    case 0x00...0x0B, 0x1C...0x1E:
      guard column <= 1 else { throw Fault.invalidOpcode }
      return try executeSSSE3(&ins, ea: ea, mmx: column == 0)
    default: break
    }
    guard column == 1 else { throw Fault.invalidOpcode }
    if op == 0x37 { return try executePCMPGTQ(&ins, ea: ea) }
    try executeSSE41Map38(&ins, ea: ea)
  }

  /// Runs an instruction of map 0F 3A (all take an imm8).
  func executeMap3A(_ ins: inout DecodedInstruction, ea: UInt64, column: Int) throws(Fault) {
    let op = ins.opcode
    if op == 0x0F {
      guard column <= 1 else { throw Fault.invalidOpcode }
      return try executePALIGNR(&ins, ea: ea, mmx: column == 0)
    }
    guard column == 1 else { throw Fault.invalidOpcode }
    if (0x60...0x63).contains(op) { return try executePCMPSTR(&ins, ea: ea) }
    try executeSSE41Map3A(&ins, ea: ea)
  }
}
