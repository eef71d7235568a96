import Testing

@testable import X86

/// Segmentation in compatibility mode at CPL 3, each case one the host-CPU difftest
/// (`trivisor difftest --mode compat32/compat16`) found the model getting wrong.
@Suite struct CompatibilitySegmentTests {
  /// Layout: GDT at 0x1000, LDT at 0x2000, page tables at 0x3000-0x6FFF, code at 0x10000, data
  /// from 0x20000; the first 2 MiB identity-mapped with 4 KiB user pages except `unmapped` ones.
  static let gdt = 0x1000
  static let ldt = 0x2000
  static let code: UInt64 = 0x10000
  /// Selectors: 0x23 flat 32-bit user code, 0x2B flat user data (as in Linux's GDT).
  static let code32: UInt16 = 0x23
  static let flatData: UInt16 = 0x2B

  /// A descriptor: `type` is the 4-bit type (data: 2 RW, 0 RO, 6 RW expand-down; code: 0xA
  /// readable, 8 execute-only), DPL 3, present, accessed.
  static func descriptor(base: UInt32, limit: UInt32, type: UInt64, big: Bool, pages: Bool = false) -> UInt64 {
    var d = UInt64(limit & 0xFFFF) | UInt64(base & 0xFF_FFFF) << 16 | UInt64(base >> 24) << 56
    d |= UInt64((limit >> 16) & 0xF) << 48
    d |= (type | 1 | 0x10 | 0x60 | 0x80) << 40
    if big { d |= 1 << 54 }
    if pages { d |= 1 << 55 }
    return d
  }

  /// LDT selector of entry `index` at RPL 3.
  static func ldtSelector(_ index: Int) -> UInt16 { UInt16(index) << 3 | 7 }

  /// A CPU in compatibility mode at CPL 3 running `code` with the given LDT and selectors;
  /// exceptions are reported, not delivered.
  static func make(
    _ bytes: [UInt8], ldt entries: [UInt64], cs: UInt16 = code32, ss: UInt16 = flatData, ds: UInt16 = flatData,
    es: UInt16 = flatData, esp: UInt64 = 0x30000, unmapped: Set<UInt64> = [], vendor: CPUVendor = .intel
  ) -> (CPU, TestRAM) {
    let ram = TestRAM()
    let cpu = CPU(model: .host64, memory: ram)
    cpu.system.cpuid.present(vendor)
    cpu.resetReal(cs: 0, ip: 0)
    let gdt: [UInt64] = [
      0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF, 0, 0x00CF_FB00_0000_FFFF, 0x00CF_F300_0000_FFFF,
    ]
    for (i, d) in gdt.enumerated() { ram.bytes.storeBytes(of: d, toByteOffset: Self.gdt + 8 * i, as: UInt64.self) }
    for (i, d) in entries.enumerated() { ram.bytes.storeBytes(of: d, toByteOffset: Self.ldt + 8 * i, as: UInt64.self) }
    ram.bytes.storeBytes(of: UInt64(0x4007), toByteOffset: 0x3000, as: UInt64.self)
    ram.bytes.storeBytes(of: UInt64(0x5007), toByteOffset: 0x4000, as: UInt64.self)
    ram.bytes.storeBytes(of: UInt64(0x6007), toByteOffset: 0x5000, as: UInt64.self)
    for page in 0..<UInt64(512) where !unmapped.contains(page) {
      ram.bytes.storeBytes(of: page << 12 | 7, toByteOffset: 0x6000 + Int(page) * 8, as: UInt64.self)
    }
    ram.load(bytes + [0xCC], at: Int(code))
    let s = cpu.state
    s.cr3 = 0x3000
    s.cr4 = CR4.pae
    s.efer = EFER.lme | EFER.lma
    s.cr0 = CR0.pg | CR0.pe | CR0.et | CR0.ne | CR0.wp
    s.gdtr = (UInt64(Self.gdt), UInt16(gdt.count * 8 - 1))
    s.setSegment(
      .ldtr,
      SegmentCache(selector: 0x30, base: UInt64(Self.ldt), limit: UInt32(entries.count * 8 - 1), attributes: 0x82))
    s.cpl = 3
    func cache(_ selector: UInt16) -> SegmentCache {
      let table = selector & 4 != 0 ? entries : gdt
      let index = Int(selector >> 3)
      guard selector & 0xFFFC != 0, index < table.count else {
        return SegmentCache(selector: selector, base: 0, limit: 0, attributes: 0)
      }
      return SegmentDescriptor(raw: table[index]).cache(selector: selector)
    }
    for (register, selector) in [(SegmentRegister.es, es), (.cs, cs), (.ss, ss), (.ds, ds), (.fs, 0), (.gs, 0)] {
      s.setSegment(register, cache(selector))
    }
    cpu.updateCodeMode()
    s.rip = code
    s.setGPR(4, esp)
    s.rflags = 0x202
    cpu.reportExceptions = true
    cpu.invalidateTLB()
    return (cpu, ram)
  }

  /// Steps until the INT3 after the code (nil) or an exception (its vector and error code).
  static func run(_ cpu: CPU, steps: Int = 16) -> (vector: UInt8, code: UInt32)? {
    for _ in 0..<steps {
      let linear = (cpu.state.segmentBase(1) &+ cpu.state.rip) & 0xFFFF_FFFF
      if linear >= code, let b = try? cpu.readLinear(linear, size: 1), b == 0xCC { return nil }
      if case .exception(let vector, let errorCode) = cpu.step() { return (vector, errorCode ?? 0) }
    }
    Issue.record("no INT3 reached")
    return nil
  }

  @Test func expandDownDataSegmentsHoldTheOffsetsAboveTheirLimit() {
    // LDT 0: 16-bit expand-down data, limit 0x7FFF, base 0x20000 - 0x8000 (valid 0x8000-0xFFFF).
    let ldt = [Self.descriptor(base: 0x20000 - 0x8000, limit: 0x7FFF, type: 6, big: false)]
    let ds = Self.ldtSelector(0)
    // mov eax, [ebx]
    let load: [UInt8] = [0x8B, 0x03]
    for (offset, faults) in [(0x8000, false), (0x7FFF, true), (0xFFFC, false), (0xFFFD, true), (0x1_0000, true)] {
      let (cpu, _) = Self.make(load, ldt: ldt, ds: ds)
      cpu.state.setGPR(3, UInt64(offset))
      let outcome = Self.run(cpu)
      #expect((outcome?.vector == 13) == faults, "offset \(offset)")
    }
    // Through SS the same overrun is #SS(0): push with ESP at the bottom of the segment.
    let (cpu, _) = Self.make([0x50], ldt: ldt, ss: ds, esp: 0x8002)
    #expect(Self.run(cpu)?.vector == 12)
    // A 32-bit expand-down segment (B set) reaches up to FFFFFFFFh.
    let big = [Self.descriptor(base: 0x20000 &- 0x8000, limit: 0x7FFF, type: 6, big: true)]
    let (wide, _) = Self.make(load, ldt: big, ds: ds)
    wide.state.setGPR(3, 0x1_0000)
    #expect(Self.run(wide) == nil)
  }

  @Test func writesToReadOnlyAndCodeSegmentsAndReadsOfExecuteOnlyCodeAreGP() {
    let ldt = [
      Self.descriptor(base: 0x20000, limit: 0xFFFF, type: 0, big: true),  // read-only data
      Self.descriptor(base: 0, limit: 0xF_FFFF, type: 8, big: true, pages: true),  // execute-only code
    ]
    // mov [ebx], eax through a read-only DS.
    var (cpu, _) = Self.make([0x89, 0x03], ldt: ldt, ds: Self.ldtSelector(0))
    cpu.state.setGPR(3, 0x10)
    #expect(Self.run(cpu)?.vector == 13)
    // Reading it is fine.
    (cpu, _) = Self.make([0x8B, 0x03], ldt: ldt, ds: Self.ldtSelector(0))
    cpu.state.setGPR(3, 0x10)
    #expect(Self.run(cpu) == nil)
    // cs: mov eax, [ebx] with an execute-only CS, and cs: mov [ebx], eax with a readable one.
    (cpu, _) = Self.make([0x2E, 0x8B, 0x03], ldt: ldt, cs: Self.ldtSelector(1))
    cpu.state.setGPR(3, 0x20000)
    #expect(Self.run(cpu)?.vector == 13)
    (cpu, _) = Self.make([0x2E, 0x89, 0x03], ldt: ldt)
    cpu.state.setGPR(3, 0x20000)
    #expect(Self.run(cpu)?.vector == 13)
    // A null DS: any access is #GP(0).
    (cpu, _) = Self.make([0x8B, 0x03], ldt: ldt, ds: 0)
    cpu.state.setGPR(3, 0x20000)
    #expect(Self.run(cpu).map { [$0.vector, UInt8($0.code)] } == [13, 0])
  }

  @Test func popSSMovesTheStackPointerAtThePoppingStacksSize() {
    // From the flat 32-bit stack, pop a 16-bit stack's selector into SS: ESP grows by 4 as a
    // 32-bit pointer, it does not become SP + 4 in a 16-bit one.
    let ldt = [Self.descriptor(base: 0x20000, limit: 0xFFFF, type: 2, big: false)]
    let (cpu, ram) = Self.make([0x17], ldt: ldt, esp: 0x3_FFFC)
    ram.bytes.storeBytes(of: UInt32(Self.ldtSelector(0)), toByteOffset: 0x3_FFFC, as: UInt32.self)
    #expect(Self.run(cpu) == nil)
    #expect(cpu.state.segment(.ss).selector == Self.ldtSelector(0))
    #expect(cpu.state.gpr(4) == 0x4_0000)
  }

  @Test func movSegmentToMemoryStoresTwoBytesAtEitherOperandSize() {
    // mov [ebx], ds; 66 mov [ebx+4], ds
    let (cpu, ram) = Self.make([0x8C, 0x1B, 0x66, 0x8C, 0x5B, 0x04], ldt: [0])
    cpu.state.setGPR(3, 0x20000)
    ram.load([UInt8](repeating: 0xAA, count: 8), at: 0x20000)
    #expect(Self.run(cpu) == nil)
    #expect((0..<8).map { ram.byte(0x20000 + $0) } == [0x2B, 0, 0xAA, 0xAA, 0x2B, 0, 0xAA, 0xAA])
  }

  @Test func enterWithA32BitOperandOnA16BitStackKeepsESPsUpperHalfInEBP() {
    // enter 8, 1 on a 16-bit stack with ESP = 0xA0430D40: EBP = ESP after pushing EBP, all 32 bits.
    let ldt = [Self.descriptor(base: 0x20000, limit: 0xFFFF, type: 2, big: false)]
    let (cpu, ram) = Self.make([0xC8, 0x08, 0x00, 0x01], ldt: ldt, ss: Self.ldtSelector(0), esp: 0xA043_0D40)
    cpu.state.setGPR(5, 0x1234_5678)
    #expect(Self.run(cpu) == nil)
    #expect(cpu.state.gpr(5) == 0xA043_0D3C)
    #expect(cpu.state.gpr(4) == 0xA043_0D30)
    // The frame pointer pushed after the old EBP is the same 32-bit value.
    #expect(ram.bytes.load(fromByteOffset: 0x20000 + 0xD38, as: UInt32.self) == 0xA043_0D3C)
    #expect(ram.bytes.load(fromByteOffset: 0x20000 + 0xD3C, as: UInt32.self) == 0x1234_5678)
  }

  @Test func enterChecksTheNewStackTopAsAnOperandSizedWriteAfterItsPushes() {
    // 16-bit expand-down stack, valid 0x8000-0xFFFF. SP = 0xF012: after pushing EBP, SP = 0xF00E;
    // allocating 0xF010 wraps the new top to 0xFFFE, where a dword would cross FFFFh: #SS(0).
    let ldt = [Self.descriptor(base: 0x20000 - 0x8000, limit: 0x7FFF, type: 6, big: false)]
    let ss = Self.ldtSelector(0)
    var (cpu, _) = Self.make([0xC8, 0x10, 0xF0, 0x00], ldt: ldt, ss: ss, esp: 0xF012)
    #expect(Self.run(cpu)?.vector == 12)
    #expect(cpu.state.gpr(4) == 0xF012)
    // A word fits there: the 16-bit form completes with SP = 0xFFFE.
    (cpu, _) = Self.make([0x66, 0xC8, 0x10, 0xF0, 0x00], ldt: ldt, ss: ss, esp: 0xF010)
    #expect(Self.run(cpu) == nil)
    #expect(cpu.state.gpr(4) & 0xFFFF == 0xFFFE)
    // On a flat stack the new top's page is probed: not present gives #PF (W=1) at that address,
    // with EBP already pushed but ESP and EBP unchanged.
    var ram: TestRAM
    (cpu, ram) = Self.make([0xC8, 0x00, 0x20, 0x00], ldt: ldt, esp: 0x3_1000, unmapped: [0x2E])
    cpu.state.setGPR(5, 0x5566_7788)
    let fault = Self.run(cpu)
    #expect(fault?.vector == 14 && fault.map { $0.code & 2 } == 2)
    #expect(cpu.state.cr2 == 0x3_1000 - 4 - 0x2000)
    #expect(cpu.state.gpr(4) == 0x3_1000 && cpu.state.gpr(5) == 0x5566_7788)
    #expect(ram.bytes.load(fromByteOffset: 0x3_0FFC, as: UInt32.self) == 0x5566_7788)
  }

  @Test func aSplitAccessReportsTheFirstFaultingByteInCR2() {
    // mov [ebx], eax across 0x20FFE-0x21001.
    var (cpu, _) = Self.make([0x89, 0x03], ldt: [0], unmapped: [0x20, 0x21])
    cpu.state.setGPR(3, 0x2_0FFE)
    #expect(Self.run(cpu)?.vector == 14)
    #expect(cpu.state.cr2 == 0x2_0FFE)
    // Only the second page missing: CR2 is its first byte, not the access's last.
    (cpu, _) = Self.make([0x89, 0x03], ldt: [0], unmapped: [0x21])
    cpu.state.setGPR(3, 0x2_0FFE)
    #expect(Self.run(cpu)?.vector == 14)
    #expect(cpu.state.cr2 == 0x2_1000)
    // The same for a read-modify-write destination.
    (cpu, _) = Self.make([0x01, 0x03], ldt: [0], unmapped: [0x21])
    cpu.state.setGPR(3, 0x2_0FFD)
    #expect(Self.run(cpu)?.vector == 14)
    #expect(cpu.state.cr2 == 0x2_1000)
  }

  @Test(arguments: [CPUVendor.intel, .amd])
  func cmpsFaultsOnTheOperandTheVendorReadsFirst(vendor: CPUVendor) {
    // DS:ESI at 0x50000 and ES:EDI at 0x60000, both not present.
    let cases: [(name: String, bytes: [UInt8], amdReadsDestinationFirst: Bool)] = [
      ("cmpsb", [0xA6], true), ("cmpsd", [0xA7], true), ("repne cmpsb", [0xF2, 0xA6], true),
      ("rep cmpsd", [0xF3, 0xA7], true), ("repe cmpsb", [0xF3, 0xA6], false),
    ]
    for c in cases {
      let (cpu, _) = Self.make(c.bytes, ldt: [0], unmapped: [0x50, 0x60], vendor: vendor)
      cpu.state.setGPR(6, 0x5_0000)
      cpu.state.setGPR(7, 0x6_0000)
      cpu.state.setGPR(1, 3)
      #expect(Self.run(cpu)?.vector == 14)
      let destinationFirst = vendor == .amd && c.amdReadsDestinationFirst
      #expect(cpu.state.cr2 == (destinationFirst ? 0x6_0000 : 0x5_0000), "\(c.name)")
    }
  }

  @Test(arguments: [CPUVendor.intel, .amd])
  func popaFaultingPartWayKeepsThePoppedRegistersOnAMD(vendor: CPUVendor) {
    // POPAD with ESP 12 bytes below an unmapped page: EDI, ESI and EBP come from the mapped page,
    // the skipped ESP slot is the first unmapped dword (CR2 there).
    var (cpu, ram) = Self.make([0x61], ldt: [0], esp: 0x3_0FF4, unmapped: [0x31], vendor: vendor)
    for (i, v) in [UInt32(0x1111_1111), 0x2222_2222, 0x3333_3333].enumerated() {
      ram.bytes.storeBytes(of: v, toByteOffset: 0x3_0FF4 + 4 * i, as: UInt32.self)
    }
    for r in [0, 1, 2, 3, 5, 6, 7] { cpu.state.setGPR(r, 0xAA) }
    #expect(Self.run(cpu)?.vector == 14)
    #expect(cpu.state.cr2 == 0x3_1000)
    #expect(cpu.state.gpr(4) == 0x3_0FF4)
    let loaded = vendor == .amd
    #expect(cpu.state.gpr(7) == (loaded ? 0x1111_1111 : 0xAA))
    #expect(cpu.state.gpr(6) == (loaded ? 0x2222_2222 : 0xAA))
    #expect(cpu.state.gpr(5) == (loaded ? 0x3333_3333 : 0xAA))
    #expect(cpu.state.gpr(3) == 0xAA)
    // POPAW past a 16-bit stack's limit: DI, SI and BP loaded, then #SS(0).
    let ldt = [Self.descriptor(base: 0x20000, limit: 0xFFF, type: 2, big: false)]
    (cpu, ram) = Self.make([0x66, 0x61], ldt: ldt, ss: Self.ldtSelector(0), esp: 0xFFA, vendor: vendor)
    ram.load([1, 0, 2, 0, 3, 0, 4, 0], at: 0x20FFA)
    for r in [0, 1, 2, 3, 5, 6, 7] { cpu.state.setGPR(r, 0xAAAA_0000) }
    #expect(Self.run(cpu)?.vector == 12)
    #expect(cpu.state.gpr(7) == (loaded ? 0xAAAA_0001 : 0xAAAA_0000))
    #expect(cpu.state.gpr(5) == (loaded ? 0xAAAA_0003 : 0xAAAA_0000))
    #expect(cpu.state.gpr(3) == 0xAAAA_0000)
  }
}
