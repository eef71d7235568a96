/// The `sse4` class: SSE3 (ADDSUB, HADD, HSUB, MOVSLDUP, MOVSHDUP, MOVDDUP, LDDQU), SSSE3 on XMM
/// registers, SSE4.1 and SSE4.2 (the string compares with implicit and explicit lengths, PCMPGTQ,
/// CRC32 at every operand size) on random XMM registers (special floating-point lanes as in the
/// `sse` class, random MXCSR) and sandbox memory, with random immediates.
extension ProgramGenerator {
  /// How an SSE3/SSSE3/SSE4 form takes its operands.
  enum SSE4Shape {
    /// xmm, xmm/m128 (aligned memory unless `unaligned`); `immediate`: an imm8 follows.
    case full(unaligned: Bool, immediate: Bool)
    /// xmm, xmm/m`bytes` (no alignment); `immediate`: an imm8 follows.
    case narrow(bytes: Int, immediate: Bool)
    /// xmm, m128 only (LDDQU unaligned, MOVNTDQA aligned).
    case memoryOnly(aligned: Bool)
    /// r/m, xmm, imm8 (PEXTRB/W/D/Q, EXTRACTPS) storing `bytes` bytes (REX.W for PEXTRQ when 8).
    case extract(bytes: Int)
    /// xmm, r/m, imm8 (PINSRB/D/Q) loading `bytes` bytes.
    case insert(bytes: Int)
    /// PCMPESTRx/PCMPISTRx: xmm, xmm/m128 (unaligned), imm8, with EAX/EDX set for explicit ones.
    case stringCompare(explicit: Bool)
    /// CRC32 r32|64, r/m of `bytes` bytes.
    case crc32(bytes: Int)
  }

  /// (prefix, opcode bytes after 0F, shape) of every `sse4` form generated.
  static let sse4Forms: [([UInt8], [UInt8], SSE4Shape)] = {
    var forms: [([UInt8], [UInt8], SSE4Shape)] = []
    let full = SSE4Shape.full(unaligned: false, immediate: false)
    let fullImmediate = SSE4Shape.full(unaligned: false, immediate: true)
    // SSE3 (twice: floating point with special values and MXCSR modes).
    for _ in 0..<2 {
      for op: UInt8 in [0xD0, 0x7C, 0x7D] { forms += [([0x66], [op], full), ([0xF2], [op], full)] }
    }
    forms += [
      ([0xF3], [0x12], full), ([0xF3], [0x16], full), ([0xF2], [0x12], .narrow(bytes: 8, immediate: false)),
      ([0xF2], [0xF0], .memoryOnly(aligned: false)),
    ]
    // SSSE3 and SSE4.1/4.2 of map 0F 38 with xmm, xmm/m128.
    let map38: [UInt8] =
      Array(0x00...0x0B) + [0x1C, 0x1D, 0x1E, 0x10, 0x14, 0x15, 0x17, 0x28, 0x29, 0x2B, 0x37] + Array(0x38...0x41)
    for op in map38 { forms.append(([0x66], [0x38, op], full)) }
    for (op, bytes) in [(0x20, 8), (0x21, 4), (0x22, 2), (0x23, 8), (0x24, 4), (0x25, 8)] as [(UInt8, Int)] {
      forms.append(([0x66], [0x38, op], .narrow(bytes: bytes, immediate: false)))
      forms.append(([0x66], [0x38, op + 0x10], .narrow(bytes: bytes, immediate: false)))
    }
    forms.append(([0x66], [0x38, 0x2A], .memoryOnly(aligned: true)))
    // Map 0F 3A (imm8); ROUND and DP twice (floating point).
    for op: UInt8 in [0x0C, 0x0D, 0x0E, 0x0F, 0x42] { forms.append(([0x66], [0x3A, op], fullImmediate)) }
    for _ in 0..<2 {
      forms += [
        ([0x66], [0x3A, 0x08], fullImmediate), ([0x66], [0x3A, 0x09], fullImmediate),
        ([0x66], [0x3A, 0x0A], .narrow(bytes: 4, immediate: true)),
        ([0x66], [0x3A, 0x0B], .narrow(bytes: 8, immediate: true)),
        ([0x66], [0x3A, 0x40], fullImmediate), ([0x66], [0x3A, 0x41], fullImmediate),
      ]
    }
    forms += [
      ([0x66], [0x3A, 0x14], .extract(bytes: 1)), ([0x66], [0x3A, 0x15], .extract(bytes: 2)),
      ([0x66], [0x3A, 0x16], .extract(bytes: 4)), ([0x66], [0x3A, 0x16], .extract(bytes: 8)),
      ([0x66], [0x3A, 0x17], .extract(bytes: 4)),
      ([0x66], [0x3A, 0x20], .insert(bytes: 1)), ([0x66], [0x3A, 0x22], .insert(bytes: 4)),
      ([0x66], [0x3A, 0x22], .insert(bytes: 8)), ([0x66], [0x3A, 0x21], .narrow(bytes: 4, immediate: true)),
    ]
    // String compares (four times: many imm8 modes) and CRC32.
    for _ in 0..<4 {
      forms += [
        ([0x66], [0x3A, 0x60], .stringCompare(explicit: true)), ([0x66], [0x3A, 0x61], .stringCompare(explicit: true)),
        ([0x66], [0x3A, 0x62], .stringCompare(explicit: false)),
        ([0x66], [0x3A, 0x63], .stringCompare(explicit: false)),
      ]
    }
    forms += [
      ([0xF2], [0x38, 0xF0], .crc32(bytes: 1)), ([0x66, 0xF2], [0x38, 0xF1], .crc32(bytes: 2)),
      ([0xF2], [0x38, 0xF1], .crc32(bytes: 4)), ([0xF2], [0x38, 0xF1], .crc32(bytes: 8)),
    ]
    return forms
  }()

  /// An XMM register number or a memory operand of `bytes` bytes (`memoryChance`).
  private mutating func xmmOrMemory(bytes: Int, aligned: Bool, memoryChance: Double = 0.3) -> RMOperand {
    rng.chance(memoryChance) ? sseMemory(bytes: bytes, aligned: aligned, .sse4) : .register(rng.below(16))
  }

  mutating func emitSSE4() {
    let (prefixes, opcode, shape) = rng.pick(Self.sse4Forms)
    let xmm = rng.below(16)
    let op = [0x0F] + opcode
    var e = Encoder()
    switch shape {
    case .full(let unaligned, let immediate):
      let rm = xmmOrMemory(bytes: 16, aligned: !unaligned)
      e.emit(prefixes: prefixes, opcode: op, reg: xmm, rm: rm, immediate: immediate ? [sse4Immediate(opcode)] : [])
    case .narrow(let bytes, let immediate):
      let rm = xmmOrMemory(bytes: bytes, aligned: false, memoryChance: 0.4)
      e.emit(prefixes: prefixes, opcode: op, reg: xmm, rm: rm, immediate: immediate ? [sse4Immediate(opcode)] : [])
    case .memoryOnly(let aligned):
      e.emit(prefixes: prefixes, opcode: op, reg: xmm, rm: sseMemory(bytes: 16, aligned: aligned, .sse4))
    case .extract(let bytes):
      let target = rng.chance(0.3) ? sseMemory(bytes: bytes, aligned: false, .sse4) : .register(destination())
      e.emit(
        size: bytes == 8 ? 64 : rng.pick([32, 64]), prefixes: prefixes, opcode: op, reg: xmm, rm: target,
        immediate: [UInt8(rng.below(256))])
    case .insert(let bytes):
      let source = rng.chance(0.3) ? sseMemory(bytes: bytes, aligned: false, .sse4) : .register(anyRegister())
      e.emit(
        size: bytes == 8 ? 64 : 32, prefixes: prefixes, opcode: op, reg: xmm, rm: source,
        immediate: [UInt8(rng.below(256))])
    case .stringCompare(let explicit):
      let wide = explicit && rng.chance(0.2)
      if explicit {
        for r in [0, 2] {
          // Lengths around the element counts, negative ones too (their absolute value counts).
          let length =
            rng.chance(0.8) ? Int32(rng.below(40)) - 20 : Int32(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
          setRegister(r, UInt32(bitPattern: length), .sse4)
        }
      }
      let rm: RMOperand =
        rng.chance(0.3)
        ? sseMemory(bytes: 16, aligned: false, .sse4) : .register(rng.below(16))
      let mode = UInt8(rng.below(128))
      e.emit(size: wide ? 64 : 32, prefixes: prefixes, opcode: op, reg: xmm, rm: rm, immediate: [mode])
    case .crc32(let bytes):
      let source = rng.chance(0.3) ? sseMemory(bytes: bytes, aligned: false, .sse4) : .register(anyRegister())
      // The 8-bit form with a REX prefix reads SPL..DIL, without one AH..BH.
      e.emit(
        size: bytes == 8 || (bytes == 1 && rng.chance(0.5)) ? 64 : 32, prefixes: prefixes, opcode: op,
        reg: destination(), rm: source, forceREX: bytes == 1 && rng.chance(0.5))
    }
    add(e.bytes, .sse4)
  }

  /// An imm8 for a map-3A form: any value, but PALIGNR's shift mostly within two registers and
  /// ROUND's mostly within its four meaningful bits.
  private mutating func sse4Immediate(_ opcode: [UInt8]) -> UInt8 {
    switch opcode.last {
    case 0x0F?: return rng.chance(0.8) ? UInt8(rng.below(34)) : UInt8(rng.below(256))
    case 0x08?, 0x09?, 0x0A?, 0x0B?: return rng.chance(0.8) ? UInt8(rng.below(16)) : UInt8(rng.below(256))
    default: return UInt8(rng.below(256))
    }
  }
}
