import Testing

@testable import X86

/// The fast path's lazily evaluated status flags (`CPU+LazyFlags.swift`): every flag producer the
/// fast handlers record (ADD, SUB, CMP, AND, OR, XOR, TEST, INC, DEC) and those that write flags
/// eagerly in between (ADC, SBB, IMUL, shifts, rotates on top of a pending record), at every
/// operand size, followed by every way the fast path reads flags back (SETcc, CMOVcc and Jcc on
/// all 16 conditions, ADC's carry, INC's kept carry, a rotate's partial update) and by PUSHF on the
/// general path, which sees them materialized. The same generated program runs with the fast path
/// on and off; registers, flags and every stored result must agree.
@Suite struct LazyFlagsTests {
  /// Producers, each as the bytes after the operand-size prefix for `rax`/`al` (destination) and
  /// `rbx`/`bl` (source); nil where the size has no such encoding.
  enum Producer: CaseIterable {
    case add, or, adc, sbb, and, sub, xor, cmp, test, inc, dec, rol, ror, shl, shr, sar, imul

    func bytes(size: Int, count: UInt8) -> [UInt8]? {
      let wide: UInt8 = size == 1 ? 0 : 1
      switch self {
      case .add: return [0x00 + wide, 0xD8]
      case .or: return [0x08 + wide, 0xD8]
      case .adc: return [0x10 + wide, 0xD8]
      case .sbb: return [0x18 + wide, 0xD8]
      case .and: return [0x20 + wide, 0xD8]
      case .sub: return [0x28 + wide, 0xD8]
      case .xor: return [0x30 + wide, 0xD8]
      case .cmp: return [0x38 + wide, 0xD8]
      case .test: return [0x84 + wide, 0xD8]
      case .inc: return [0xFE + wide, 0xC0]
      case .dec: return [0xFE + wide, 0xC8]
      case .rol: return [0xC0 + wide, 0xC0, count]
      case .ror: return [0xC0 + wide, 0xC8, count]
      case .shl: return [0xC0 + wide, 0xE0, count]
      case .shr: return [0xC0 + wide, 0xE8, count]
      case .sar: return [0xC0 + wide, 0xF8, count]
      case .imul: return size == 1 ? nil : [0x0F, 0xAF, 0xC3]
      }
    }
  }

  /// Operand pairs that reach every flag: zero, sign changes, signed and unsigned overflow, a
  /// carry out of bit 3, odd and even parity.
  static let operands: [(UInt64, UInt64)] = [
    (0, 0), (1, 1), (0x7F, 1), (0x80, 0x80), (0xFF, 1), (0x7FFF, 0xFFFF), (0x8000_0000, 0x7FFF_FFFF),
    (0xFFFF_FFFF_FFFF_FFFF, 2), (0x8000_0000_0000_0000, 0x8000_0000_0000_0001), (0x1234_5678_9ABC_DEF0, 0x0F0F),
  ]

  /// Builds the program for one producer and size: for every operand pair, blocks that load the
  /// operands, run the producer and read its flags back, each storing what it saw at RSI + 8k.
  /// The body runs three times (a loop), so the second and third passes run in the page loop with
  /// the producer's record still pending when the readers run.
  func program(_ producer: Producer, size: Int) -> [UInt8]? {
    let prefix: [UInt8] = size == 8 ? [0x48] : size == 2 ? [0x66] : []
    var code: [UInt8] = [0xB9, 3, 0, 0, 0]  // mov ecx, 3
    let top = code.count
    code += [0x48, 0xC7, 0xC6, 0x00, 0x00, 0x10, 0x00]  // mov rsi, 0x100000
    var slot: UInt32 = 0
    func store(_ rex: UInt8, _ modrm: UInt8) {  // mov [rsi + 8 * slot], reg
      code += [rex, 0x89, modrm] + withUnsafeBytes(of: (slot * 8).littleEndian) { Array($0) }
      slot += 1
    }
    for (index, (a, b)) in Self.operands.enumerated() {
      guard let produce = producer.bytes(size: size, count: UInt8([1, 3, 7, 8, 31, 33][index % 6])) else {
        return nil
      }
      func load() {
        code += [0x48, 0xB8] + withUnsafeBytes(of: a.littleEndian) { Array($0) }  // mov rax, a
        code += [0x48, 0xBB] + withUnsafeBytes(of: b.littleEndian) { Array($0) }  // mov rbx, b
        code += [0xBA, 0, 0, 0, 0, 0x41, 0xBB, 0, 0, 0, 0, 0x41, 0xBA, 0, 0, 0, 0]  // edx, r11d, r10d = 0
        code += [0x41, 0xBD, 0, 0, 0, 0, 0x41, 0xBE, 5, 0, 0, 0]  // r13d = 0, r14d = 5
        code += prefix + produce
      }
      for cc: UInt8 in 0..<16 {
        load()
        code += [0x0F, 0x90 + cc, 0xC2]  // setcc dl
        code += [0x4C, 0x0F, 0x40 + cc, 0xDB]  // cmovcc r11, rbx
        code += [0x70 + cc, 0x03, 0x49, 0xFF, 0xC2]  // jcc +3; inc r10
        code += [0x9C, 0x41, 0x58]  // pushfq; pop r8
        store(0x48, 0x96)  // rdx
        store(0x4C, 0x9E)  // r11
        store(0x4C, 0x96)  // r10
        store(0x4C, 0x86)  // r8
        // A rotate on top of the producer's record, then the same condition.
        load()
        code += [0x49, 0xD1, 0xC7, 0x0F, 0x90 + cc, 0xC2]  // rol r15, 1; setcc dl
        code += [0x9C, 0x41, 0x58]
        store(0x48, 0x96)
        store(0x4C, 0x86)
      }
      load()
      code += [0x49, 0x11, 0xDD, 0x9C, 0x41, 0x58]  // adc r13, rbx; pushfq; pop r8
      store(0x4C, 0xAE)  // r13
      store(0x4C, 0x86)
      load()
      code += [0x49, 0xFF, 0xC6, 0x0F, 0x92, 0xC2, 0x9C, 0x41, 0x58]  // inc r14; setc dl; pushfq; pop r8
      store(0x4C, 0xB6)  // r14
      store(0x48, 0x96)
      store(0x4C, 0x86)
      load()
      code += [0x49, 0xD1, 0xCF, 0x49, 0xFF, 0xC6, 0x0F, 0x92, 0xC2]  // ror r15, 1; inc r14; setc dl
      store(0x48, 0x96)
      store(0x48, 0x86)  // rax, the producer's result
    }
    let back = Int32(top - (code.count + 2 + 6))  // relative to the end of the JNZ after DEC ECX
    code += [0xFF, 0xC9, 0x0F, 0x85] + withUnsafeBytes(of: back.littleEndian) { Array($0) }  // dec ecx; jnz
    code += [0xCC]
    return code
  }

  @Test(arguments: [1, 2, 4, 8])
  func everyReaderSeesTheFlagsTheGeneralPathComputes(size: Int) {
    for producer in Producer.allCases {
      guard let code = program(producer, size: size) else { continue }
      var results: [[UInt64]] = []
      for fast in [true, false] {
        let (cpu, ram) = makeCPU64(code)
        cpu.state.setGPR(Reg.rsp, 0x1F_0000)  // the program reaches past 0x8000
        cpu.fastPathEnabled = fast
        let event = cpu.run(budget: 1_000_000)
        guard case .exception(vector: 3, _) = event else {
          Issue.record("\(producer) size \(size): expected INT3, got \(event)")
          return
        }
        if fast { #expect(cpu.fastPathRetired > cpu.instructionsRetired / 2, "\(producer): fast path unused") }
        results.append(
          (0..<16).map { cpu.state.gpr($0) } + [cpu.state.rflags, cpu.instructionsRetired]
            + (0..<1200).map { ram.qword(0x10_0000 + 8 * $0) })
      }
      let diff = zip(results[0], results[1]).enumerated().filter { $0.element.0 != $0.element.1 }.prefix(3)
      #expect(
        diff.isEmpty,
        "\(producer) size \(size), fast vs general: \(diff.map { "#\($0.offset): 0x\(String($0.element.0, radix: 16)) vs 0x\(String($0.element.1, radix: 16))" })"
      )
    }
  }

  @Test func theRecordIsMaterializedWheneverTheLoopStops() {
    // add eax, ebx; dec ecx; jnz: stopped at every budget, RFLAGS must be exact each time.
    let code: [UInt8] = [0xB9, 50, 0, 0, 0, 0x01, 0xD8, 0xFF, 0xC9, 0x75, 0xFA, 0xCC]
    let (looped, _) = makeCPU64(code)
    let (stepped, _) = makeCPU64(code)
    stepped.fastPathEnabled = false
    looped.state.setGPR(Reg.rbx, 0x7FFF_FFF0)
    stepped.state.setGPR(Reg.rbx, 0x7FFF_FFF0)
    for budget: UInt64 in [1, 1, 2, 3, 5, 8, 13, 21] {
      _ = looped.run(budget: budget)
      for _ in 0..<budget { _ = stepped.step() }
      #expect(!looped.lazyFlagsPending)
      #expect(looped.state.rflags == stepped.state.rflags, "after \(looped.instructionsRetired) instructions")
      #expect(looped.state.gpr(Reg.rax) == stepped.state.gpr(Reg.rax))
    }
  }
}
