import Testing
import X86

/// Random descriptor tables, TSS images and system instructions in 32-bit protected mode: far
/// jumps and calls through gates, task switches, IRET and RETF with random frames, segment loads,
/// LTR/LLDT, POPF of NT/VM/TF. Whatever the guest builds, the model answers with architectural
/// events and never crashes or stops with an internal error.
@Suite struct ProtectedModeFuzzTests {
  typealias Xorshift = RobustnessTests.Xorshift

  /// The fixed part of the GDT (selectors 0x08-0x50); 0x58-0xF8 are random each round.
  static let fixedGDT: [UInt64] = [
    0,
    0x00CF_9A00_0000_FFFF,  // 0x08 code32, DPL 0
    0x00CF_9200_0000_FFFF,  // 0x10 data32, DPL 0
    0x00CF_FA00_0000_FFFF,  // 0x18 code32, DPL 3
    0x00CF_F200_0000_FFFF,  // 0x20 data32, DPL 3
    descriptor(base: 0x3000, limit: 0x67, access: 0x89),  // 0x28 TSS (current)
    gate(selector: 0x08, offset: 0x10800, access: 0xEC),  // 0x30 call gate, DPL 3
    descriptor(base: 0x3100, limit: 0x67, access: 0x89),  // 0x38 TSS (target)
    gate(selector: 0x38, offset: 0, access: 0xE5),  // 0x40 task gate, DPL 3
    descriptor(base: 0x4000, limit: 0xFF, access: 0x82),  // 0x48 LDT
    0x008F_9A00_0000_FFFF,  // 0x50 code16, DPL 0
  ]

  static func descriptor(base: UInt64, limit: UInt64, access: UInt64) -> UInt64 {
    (limit & 0xFFFF) | (base & 0xFF_FFFF) << 16 | access << 40 | ((limit >> 16) & 0xF) << 48 | (base >> 24) << 56
  }

  static func gate(selector: UInt64, offset: UInt64, access: UInt64) -> UInt64 {
    (offset & 0xFFFF) | selector << 16 | access << 40 | (offset >> 16) << 48
  }

  /// One randomly chosen instruction template, mostly system instructions with random selectors.
  static func randomInstruction(_ rng: inout Xorshift) -> [UInt8] {
    func bytes(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    let selector = rng.next() & 0x1FF
    let offset = rng.next() & 1 == 0 ? 0x10000 + (rng.next() & 0xFFF) : rng.next() & 0xFFFF_FFFF
    switch rng.next() % 16 {
    case 0: return [0xEA] + bytes(offset, 4) + bytes(selector, 2)  // jmp far
    case 1: return [0x9A] + bytes(offset, 4) + bytes(selector, 2)  // call far
    case 2: return [0xCD, UInt8(truncatingIfNeeded: rng.next())]  // int n
    case 3: return (0..<3).flatMap { _ in [0x68] + bytes(rng.next(), 4) } + [0xCF]  // push x3; iret
    case 4: return (0..<2).flatMap { _ in [0x68] + bytes(rng.next(), 4) } + [rng.next() & 1 == 0 ? 0xCB : 0xCA, 4, 0]
    case 5:  // mov eax, selector; mov sreg, ax
      return [0xB8] + bytes(selector, 4) + [0x8E, [0xC0, 0xD0, 0xD8, 0xE0, 0xE8][Int(rng.next() % 5)]]
    case 6: return [0xB8] + bytes(selector, 4) + [0x0F, 0x00, rng.next() & 1 == 0 ? 0xD8 : 0xD0]  // ltr/lldt ax
    case 7: return [0xB8] + bytes(selector, 4) + [0x0F, UInt8(2 + rng.next() % 2), 0xC0]  // lar/lsl eax, eax
    case 8: return [0xB8] + bytes(selector, 4) + [0x0F, 0x00, rng.next() & 1 == 0 ? 0xE0 : 0xE8]  // verr/verw
    case 9: return [0x68] + bytes(rng.next() & 0x0007_7FD7 | 2, 4) + [0x9D]  // push flags; popf
    case 10: return [[0x0F, 0x05], [0x0F, 0x34], [0x0F, 0x35], [0x0F, 0x07]][Int(rng.next() % 4)]
    case 11: return [0xB8] + bytes(rng.next(), 4) + [0x0F, 0x22, [0xC0, 0xD8, 0xE0][Int(rng.next() % 3)]]
    default: return (0..<(1 + rng.next() % 8)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }
  }

  func runRounds(seed: UInt64, rounds: Int, ring3: Bool) throws -> [String: Int] {
    var rng = Xorshift(state: seed)
    let ram = TestRAM(size: 1 << 21)
    let cpu = CPU(model: .host64, memory: ram)
    var outcomes: [String: Int] = [:]
    for _ in 0..<rounds {
      ram.bytes.initializeMemory(as: UInt8.self, repeating: 0, count: 0x20000)
      var gdt = Self.fixedGDT
      while gdt.count < 32 {
        let plausible = rng.next() & 1 == 0
        gdt.append(plausible ? rng.next() | 1 << 47 : rng.next())
      }
      for (i, d) in gdt.enumerated() { ram.bytes.storeBytes(of: d, toByteOffset: 0x1000 + 8 * i, as: UInt64.self) }
      for v in 0..<256 {  // IDT: mostly interrupt gates to the handler area, some random
        let entry = rng.next() % 8 == 0 ? rng.next() : Self.gate(selector: 0x08, offset: 0x10800, access: 0x8E)
        ram.bytes.storeBytes(of: entry, toByteOffset: 0x2000 + 8 * v, as: UInt64.self)
      }
      for i in 0..<32 {  // the LDT and the target TSS: random; the current TSS: stacks for ring 0
        ram.bytes.storeBytes(of: rng.next(), toByteOffset: 0x4000 + 8 * i, as: UInt64.self)
        ram.bytes.storeBytes(of: rng.next() & 0xFFFF_00FF_0001_FFFF, toByteOffset: 0x3100 + 4 * i, as: UInt64.self)
      }
      ram.bytes.storeBytes(of: UInt32(0x7000), toByteOffset: 0x3004, as: UInt32.self)  // ESP0
      ram.bytes.storeBytes(of: UInt32(0x10), toByteOffset: 0x3008, as: UInt32.self)  // SS0
      var code: [UInt8] = []
      while code.count < 0x700 { code += Self.randomInstruction(&rng) }
      ram.load(code, at: 0x10000)
      ram.load((0..<0x100).map { _ in UInt8(truncatingIfNeeded: rng.next()) } + [0xCF], at: 0x10800)

      cpu.resetReal(cs: 0, ip: 0)
      cpu.reportExceptions = false
      cpu.invalidateTLB()
      try cpu.system.loadDescriptorTable(.gdt, limit: 0xFF, base: 0x1000, operandSize: 4)
      try cpu.system.loadDescriptorTable(.idt, limit: 0x7FF, base: 0x2000, operandSize: 4)
      _ = try cpu.system.movToCR(0, CR0.pe | CR0.et)
      _ = try cpu.system.farJump(selector: 0x08, offset: 0x10000, operandSize: 4, returnRIP: 0)
      for s in [SegmentRegister.ss, .ds, .es] { try cpu.system.loadSegment(s, 0x10) }
      try cpu.system.ltr(0x28)
      cpu.state.setGPR(4, 0x8000)
      if ring3 {  // IRET to ring 3 at the same code (the code segment is DPL 3, so it may run there)
        for (i, v) in [0x10000, 0x1B, 0x202, 0x9000, 0x23].enumerated() {
          ram.bytes.storeBytes(of: UInt32(v), toByteOffset: 0x7F00 + 4 * i, as: UInt32.self)
        }
        cpu.state.setGPR(4, 0x7F00)
        _ = try cpu.system.iret(operandSize: 4, returnRIP: 0)
      }
      steps: for _ in 0..<200 {
        guard let event = cpu.step() else { continue }
        switch event {
        case .portIn, .mmioRead, .msrRead, .rdtsc: cpu.complete(value: 0)
        case .cpuid: cpu.completeCPUID(eax: 0, ebx: 0, ecx: 0, edx: 0)
        case .internalError(let message):
          outcomes["internal error: \(message)", default: 0] += 1
          break steps
        case .halt, .tripleFault:
          outcomes["\(event)", default: 0] += 1
          break steps
        default: outcomes["other", default: 0] += 1
        }
      }
      outcomes["rounds", default: 0] += 1
    }
    return outcomes
  }

  @Test(arguments: [false, true])
  func randomSystemStateNeverCrashes(ring3: Bool) throws {
    let outcomes = try runRounds(seed: ring3 ? 0x0BAD_CAFE_1234_5678 : 0x5EED_0F00_D00D_1234, rounds: 150, ring3: ring3)
    let unexpected = outcomes.keys.filter { $0.hasPrefix("internal error") }
    #expect(unexpected.isEmpty, "\(outcomes)")
    #expect(outcomes["rounds"] == 150)
  }
}
