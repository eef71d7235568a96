import Testing

@testable import X86

/// The fast forms outside 64-bit mode (`FastLegacy`): 32-bit protected mode with and without
/// paging, 16-bit real mode on every model, and the segment access summary (`SegmentAccess`)
/// that decides which accesses may skip the general path's segment checks. Every program runs
/// twice, with the fast path and without, and must end identically: registers, flags, memory,
/// the retired count, and the fault (vector, error code, RIP) when there is one.
@Suite struct LegacyFastPathTests {
  /// GDT selectors of `makeCPU32`.
  enum Sel {
    static let code: UInt16 = 0x08  // flat 32-bit code
    static let data: UInt16 = 0x10  // flat 32-bit data
    static let small: UInt16 = 0x18  // data, base 0x4000, limit 0xFFF
    static let expandDown: UInt16 = 0x20  // expand-down data, limit 0x2FFF, B = 1
    static let readOnly: UInt16 = 0x28  // flat read-only data
    static let shortCode: UInt16 = 0x30  // 32-bit code, limit 0x1FFF
    static let stack16: UInt16 = 0x38  // 16-bit stack (B = 0), base 0x7000, limit 0xFFFF
    static let tss: UInt16 = 0x40  // the current task (busy)
    static let tss2: UInt16 = 0x48  // a second task at 0x6000
    static let bigStack16: UInt16 = 0x50  // 16-bit stack (B = 0), base 0, limit 4 GiB
  }

  static let gdt = 0x500
  static let pageDirectory = 0x10_0000

  /// A 32-bit protected-mode CPU at CPL 0 (host64 model) with `code` at 0x1000, flat segments,
  /// ESP = 0x8000 and the GDT of `Sel`; with `paging`, 32-bit paging identity-maps the first 4 MiB
  /// through 4 KiB pages. Exceptions are reported, not delivered.
  func makeCPU32(_ code: [UInt8], paging: Bool = false) -> (CPU, TestRAM) {
    let ram = TestRAM(size: 1 << 22)
    ram.load(code, at: 0x1000)
    let descriptors: [(UInt16, SegmentDescriptor)] = [
      (Sel.code, SegmentDescriptor(raw: 0x00CF_9B00_0000_FFFF)),
      (Sel.data, SegmentDescriptor(raw: 0x00CF_9300_0000_FFFF)),
      (Sel.small, SegmentDescriptor(base: 0x4000, limit: 0xFFF, attributes: 0x4093)),
      (Sel.expandDown, SegmentDescriptor(base: 0, limit: 0x2FFF, attributes: 0x4097)),
      (Sel.readOnly, SegmentDescriptor(base: 0, limit: 0xFFFFF, attributes: 0xC091)),
      (Sel.shortCode, SegmentDescriptor(base: 0, limit: 0x1FFF, attributes: 0x409B)),
      (Sel.stack16, SegmentDescriptor(base: 0x7000, limit: 0xFFFF, attributes: 0x0093)),
      (Sel.tss, SegmentDescriptor(base: 0x5000, limit: 0x67, attributes: 0x8B)),
      (Sel.tss2, SegmentDescriptor(base: 0x6000, limit: 0x67, attributes: 0x89)),
      (Sel.bigStack16, SegmentDescriptor(base: 0, limit: 0xFFFFF, attributes: 0x8093)),
    ]
    for (selector, d) in descriptors {
      ram.bytes.storeBytes(of: d.raw, toByteOffset: Self.gdt + Int(selector), as: UInt64.self)
    }
    let cpu = CPU(model: .host64, memory: ram)
    let s = cpu.state
    s.cr0 = CR0.pe | CR0.et
    s.gdtr = (UInt64(Self.gdt), 0x57)
    s.setSegment(.cs, SegmentCache(selector: Sel.code, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC09B))
    for r in [SegmentRegister.ss, .ds, .es, .fs, .gs] {
      s.setSegment(r, SegmentCache(selector: Sel.data, base: 0, limit: 0xFFFF_FFFF, attributes: 0xC093))
    }
    s.setSegment(.tr, SegmentCache(selector: Sel.tss, base: 0x5000, limit: 0x67, attributes: 0x8B))
    s.cpl = 0
    s.codeMode = .bits32
    s.rflags = Flags.reserved1
    s.rip = 0x1000
    s.setGPR(4, 0x8000)
    if paging {
      let table = Self.pageDirectory + 0x1000
      ram.bytes.storeBytes(of: UInt32(table | 3), toByteOffset: Self.pageDirectory, as: UInt32.self)
      for page in 0..<1024 {
        ram.bytes.storeBytes(of: UInt32(page << 12 | 3), toByteOffset: table + 4 * page, as: UInt32.self)
      }
      s.cr3 = UInt64(Self.pageDirectory)
      s.cr0 |= CR0.pg
    }
    cpu.reportExceptions = true
    cpu.invalidateTLB()
    warm(cpu)
    return (cpu, ram)
  }

  /// Fills the host-page cache for the first 128 KiB, as a running guest's earlier accesses
  /// would have: the fast handlers only hit pages the general path has touched, so without this a
  /// short program would run every access on the general path and prove nothing.
  func warm(_ cpu: CPU) {
    for page in UInt64(0)..<32 {
      _ = cpu.hostPage(page << 12, write: true)
      _ = cpu.hostPage(page << 12, write: false)
    }
  }

  /// A loop over most fast forms in 32-bit code (ALU in every shape, ADC/SBB, INC/DEC of memory,
  /// MOVSX/MOVZX, IMUL, shifts, CMOVcc, SETcc, PUSH/POP of dwords and words, CALL/RET, LEA with
  /// 32- and 16-bit addresses, ES/FS/GS overrides, a moffs load, Jcc) with one general-path
  /// instruction (NEG). Data at 0x3000, stack at 0x8000 (nasm source in the comment).
  static let mixedLoop32: [UInt8] = [
    0xB9, 0x32, 0x00, 0x00, 0x00, 0xBE, 0x00, 0x30, 0x00, 0x00, 0x31, 0xDB, 0x8B, 0x04, 0xCE, 0x01, 0xC8, 0x39, 0xF8,
    0x11, 0xC3, 0x19, 0xDA, 0x6B, 0xF8, 0xF9, 0x0F, 0xAF, 0x6E, 0x08, 0x0F, 0xBE, 0x3C, 0x0E, 0x0F, 0xB7, 0x2C, 0x4E,
    0xD3, 0xE0, 0xC1, 0xFF, 0x03, 0xD3, 0xCD, 0xD1, 0xD2, 0xFF, 0x84, 0xCE, 0x00, 0x02, 0x00, 0x00, 0xFE, 0x4E, 0x03,
    0xF6, 0x04, 0x0E, 0x40, 0x0F, 0x45, 0xFD, 0x0F, 0x48, 0x6E, 0x10, 0x0F, 0x92, 0xC2, 0x0F, 0x9F, 0xC0, 0x09, 0x84,
    0x8E, 0x00, 0x01, 0x00, 0x00, 0x66, 0x21, 0xD3, 0x30, 0xDA, 0x83, 0x6E, 0x18, 0x05, 0x50, 0x53, 0x68, 0x34, 0x12,
    0x00, 0x00, 0x66, 0x6A, 0x55, 0x66, 0x58, 0x5F, 0x5D, 0xE8, 0x3D, 0x00, 0x00, 0x00, 0x58, 0xF7, 0xD8, 0x89, 0x84,
    0xCE, 0x00, 0x04, 0x00, 0x00, 0xC7, 0x84, 0x8E, 0x00, 0x08, 0x00, 0x00, 0xEF, 0xBE, 0xAD, 0xDE, 0x26, 0x66, 0x89,
    0x94, 0x4E, 0xB8, 0x0B, 0x00, 0x00, 0x64, 0x03, 0x46, 0x28, 0x65, 0x88, 0x04, 0x0E, 0x8D, 0x54, 0x58, 0x07, 0x66,
    0x67, 0x8D, 0x68, 0x03, 0xA1, 0x10, 0x30, 0x00, 0x00, 0x90, 0x49, 0x0F, 0x85, 0x63, 0xFF, 0xFF, 0xFF, 0xCC, 0x89,
    0xE0, 0xC3,
  ]
  // bits 32; mov ecx, 50; mov esi, 0x3000; xor ebx, ebx
  // again: mov eax, [esi+ecx*8]; add eax, ecx; cmp eax, edi; adc ebx, eax; sbb edx, ebx
  // imul edi, eax, -7; imul ebp, [esi+8]; movsx edi, byte [esi+ecx]; movzx ebp, word [esi+ecx*2]
  // shl eax, cl; sar edi, 3; ror ebp, cl; rcl edx, 1; inc dword [esi+ecx*8+512]; dec byte [esi+3]
  // test byte [esi+ecx], 0x40; cmovnz edi, ebp; cmovs ebp, [esi+16]; setc dl; setg al
  // or [esi+ecx*4+256], eax; and bx, dx; xor dl, bl; sub dword [esi+24], 5; push eax; push ebx
  // push 0x1234; push word 0x55; pop ax; pop edi; pop ebp; call sub1; pop eax; neg eax
  // mov [esi+ecx*8+1024], eax; mov dword [esi+ecx*4+2048], 0xDEADBEEF; mov [es:esi+ecx*2+3000], dx
  // add eax, [fs:esi+40]; mov [gs:esi+ecx], al; lea edx, [eax+ebx*2+7]; lea bp, [bx+si+3]
  // mov eax, [0x3010]; nop; dec ecx; jnz again; int3
  // sub1: mov eax, esp; ret

  /// The same kind of loop in 16-bit real-mode code the 8086 can run (loaded at 0000:0100, ES =
  /// 0200h): word and byte ALU forms, INC/DEC/TEST of memory, PUSH/POP, CALL/RET, LEA, shifts by
  /// 1 and CL, LOOP (general path), NEG (general path).
  static let mixedLoop16: [UInt8] = [
    0xB8, 0x00, 0x02, 0x8E, 0xC0, 0xB9, 0x32, 0x00, 0xBE, 0x00, 0x30, 0x31, 0xDB, 0x89, 0xCF, 0xD1, 0xE7, 0x8B, 0x01,
    0x01, 0xC8, 0x39, 0xD0, 0x11, 0xC3, 0x19, 0xDA, 0xFF, 0x81, 0x00, 0x02, 0xFE, 0x4C, 0x03, 0xF6, 0x00, 0x40, 0x09,
    0x82, 0x00, 0x01, 0x20, 0xD3, 0x30, 0xDA, 0x83, 0x6C, 0x18, 0x05, 0x50, 0x53, 0x5F, 0x5D, 0xE8, 0x1E, 0x00, 0x58,
    0xF7, 0xD8, 0x89, 0x83, 0x00, 0x04, 0x26, 0xC7, 0x01, 0xEF, 0xBE, 0x26, 0x03, 0x44, 0x28, 0x8D, 0x50, 0x07, 0xA0,
    0x10, 0x30, 0xD1, 0xC0, 0xD3, 0xEA, 0x90, 0xE2, 0xB8, 0xCC, 0x89, 0xE0, 0xC3,
  ]
  // bits 16; mov ax, 0x0200; mov es, ax; mov cx, 50; mov si, 0x3000; xor bx, bx
  // again: mov di, cx; shl di, 1; mov ax, [bx+di]; add ax, cx; cmp ax, dx; adc bx, ax; sbb dx, bx
  // inc word [bx+di+512]; dec byte [si+3]; test byte [si+bx], 0x40; or [bp+si+256], ax
  // and bl, dl; xor dl, bl; sub word [si+24], 5; push ax; push bx; pop di; pop bp; call sub1
  // pop ax; neg ax; mov [bp+di+1024], ax; mov word [es:bx+di], 0xBEEF; add ax, [es:si+40]
  // lea dx, [bx+si+7]; mov al, [0x3010]; rol ax, 1; shr dx, cl; nop; loop again; int3
  // sub1: mov ax, sp; ret

  /// Registers, RIP, RFLAGS, the retired count and the first 64 KiB of memory, by name.
  func snapshot(_ cpu: CPU, _ ram: TestRAM) -> [(String, UInt64)] {
    (0..<8).map { ("r\($0)", cpu.state.gpr($0)) }
      + [("rip", cpu.state.rip), ("rflags", cpu.state.rflags), ("retired", cpu.instructionsRetired)]
      + (0..<8192).map { ("[0x\(String(8 * $0, radix: 16))]", ram.qword(8 * $0)) }
  }

  func differences(_ a: [(String, UInt64)], _ b: [(String, UInt64)]) -> [String] {
    zip(a, b).filter { $0.1 != $1.1 }.prefix(5).map {
      "\($0.0): 0x\(String($0.1, radix: 16)) vs 0x\(String($1.1, radix: 16))"
    }
  }

  /// Runs `make()`'s CPU with and without the fast path to the first event (at most `budget`
  /// instructions) and expects the same event and the same state; returns the fast run's event
  /// and how many instructions its fast handlers completed.
  @discardableResult
  func expectSameOutcome(
    _ what: String, budget: UInt64 = 100_000, _ make: () -> (CPU, TestRAM)
  ) -> (event: CPUEvent, fastRetired: UInt64) {
    let (fast, fastRAM) = make()
    let (general, generalRAM) = make()
    general.fastPathEnabled = false
    let fastEvent = fast.run(budget: budget)
    let generalEvent = general.run(budget: budget)
    #expect(fastEvent == generalEvent, "\(what): fast \(fastEvent) vs general \(generalEvent)")
    let diff = differences(snapshot(fast, fastRAM), snapshot(general, generalRAM))
    #expect(diff.isEmpty, "\(what), fast vs general path: \(diff)")
    #expect(general.fastPathRetired == 0)
    return (fastEvent, fast.fastPathRetired)
  }

  // MARK: Classification

  @Test func classifiesTheSameFormsIn16And32BitCode() {
    func form(_ bytes: [UInt8], _ mode: CodeMode, _ model: CPUModel = .host64) -> FastForm {
      guard case .success(let ins) = Decoder.decode(bytes, mode: mode, model: model) else { return .generic }
      return FastForm.classify(ins, mode: mode, model: model)
    }
    #expect(form([0x01, 0xD8], .bits32) == .addRR)  // add eax, ebx
    #expect(form([0x03, 0x07], .bits32) == .addRM)  // add eax, [edi]
    #expect(form([0x66, 0x89, 0x1F], .bits32) == .movMR)  // mov [edi], bx
    #expect(form([0xC1, 0xC0, 0x07], .bits32) == .shiftR)  // rol eax, 7
    #expect(form([0x75, 0xF6], .bits32) == .jcc)
    #expect(form([0x66, 0x75, 0xF6], .bits32) == .jcc)  // a 16-bit Jcc truncates EIP: the handler does
    #expect(form([0xE8, 0, 0, 0, 0], .bits32) == .callRel)
    #expect(form([0xC3], .bits32) == .ret)
    #expect(form([0x55], .bits32) == .pushR)
    #expect(form([0x66, 0x5D], .bits32) == .popR)  // pop bp
    #expect(form([0x01, 0xD8], .bits16) == .addRR)  // add ax, bx
    #expect(form([0x8B, 0x01], .bits16) == .movRM)  // mov ax, [bx+di]
    #expect(form([0xD3, 0xEA], .bits16) == .shiftR)  // shr dx, cl
    // The 8086 does not mask shift counts and pushes the decremented SP: those stay general.
    #expect(form([0xD3, 0xEA], .bits16, .i8086) == .generic)
    #expect(form([0x54], .bits16, .i8086) == .generic)  // push sp
    #expect(form([0x54], .bits16, .i80286) == .pushR)
    #expect(form([0x50], .bits16, .i8086) == .pushR)  // push ax
    // Segment registers, far branches and LOCK keep the general path in every mode.
    #expect(form([0x8E, 0xD8], .bits32) == .generic)  // mov ds, ax
    #expect(form([0x1E], .bits32) == .generic)  // push ds
    #expect(form([0xEA, 0, 0, 0, 0, 0x08, 0], .bits32) == .generic)  // jmp far
    #expect(form([0xF0, 0x01, 0x1F], .bits32) == .generic)  // lock add [edi], ebx
  }

  // MARK: The segment access summary

  @Test func theSummaryPassesOnlyWhatNeedsNoTypeCheck() {
    let both = SegmentAccess.read | SegmentAccess.write
    #expect(SegmentAccess.summary(0xC093) == both)  // flat read/write data
    #expect(SegmentAccess.summary(0x0093) == both)  // 16-bit read/write data (limit checked per access)
    #expect(SegmentAccess.summary(0x00F3) == both)  // DPL 3 (v86 and ring-3 data)
    #expect(SegmentAccess.summary(0xC091) == SegmentAccess.read)  // read-only data
    #expect(SegmentAccess.summary(0xC09B) == SegmentAccess.read)  // readable code
    #expect(SegmentAccess.summary(0xC09F) == SegmentAccess.read)  // readable conforming code
    #expect(SegmentAccess.summary(0xC099) == 0)  // execute-only code
    #expect(SegmentAccess.summary(0x4097) == 0)  // expand-down data: offsets above the limit
    #expect(SegmentAccess.summary(0x4095) == 0)  // expand-down read-only data
    #expect(SegmentAccess.summary(0xC013) == 0)  // not present
    #expect(SegmentAccess.summary(0x0082) == 0)  // a system descriptor (LDT)
    #expect(SegmentAccess.summary(0) == 0)  // a null selector's unusable cache
  }

  /// Every writer of the segment caches goes through `CPUState.setSegment`, which keeps the
  /// summary: after segment loads, far transfers, IRET, task switches, interrupt delivery,
  /// SYSENTER and resets the summary of ES..GS always matches their attributes.
  @Test func theSummaryFollowsEverySegmentLoad() throws {
    func consistent(_ s: CPUState, _ what: String) {
      for r in 0..<6 {
        #expect(
          s.segmentAccess(r) == SegmentAccess.summary(s.segmentAttributes(r)), "\(what): segment \(r)")
      }
    }
    let (s, m) = makeTwoTasks()
    consistent(s, "setup")
    m.put16(0x5000 + 0x54, 0x30)  // the new task's DS: expand-down
    _ = try FarTransfers.call(selector: 0x60, offset: 0, operandSize: 4, returnRIP: 0x1007, state: s, memory: m)
    #expect(s.segment(.ds).selector == 0x30 && s.segmentAccess(3) == 0)
    consistent(s, "task switch")
    try ReturnInstructions.iret(operandSize: 4, returnRIP: 0x7780, state: s, memory: m)
    consistent(s, "IRET back")
    // Segment loads from the GDT: read-only-looking, expand-down, null.
    for (register, selector) in [(SegmentRegister.ds, UInt16(0x30)), (.es, 0x10), (.fs, 0), (.gs, 0x10), (.ds, 0x10)] {
      try SegmentLoader.loadData(register, selector: selector, state: s, memory: m)
      consistent(s, "load \(register) with \(selector)")
    }
    // A far jump to a ring-0 code segment, interrupt delivery through a trap gate.
    _ = try FarTransfers.jump(selector: 0x08, offset: 0x2000, operandSize: 4, state: s, memory: m)
    consistent(s, "far jump")
    let (cpu, _) = makeCPUReal(.host64, [0x90])
    consistent(cpu.state, "real-mode reset")
    cpu.powerOnReset()
    consistent(cpu.state, "power-on reset")
  }

  // MARK: Fast and general paths agree

  @Test(arguments: [false, true])
  func aMixedLoopIn32BitProtectedMode(paging: Bool) {
    let (event, fastRetired) = expectSameOutcome("32-bit loop, paging \(paging)") {
      let (cpu, ram) = makeCPU32(Self.mixedLoop32, paging: paging)
      ram.load((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }, at: 0x3000)
      return (cpu, ram)
    }
    #expect(event == .exception(vector: 3, errorCode: nil))
    #expect(fastRetired > 50 * 40, "the fast handlers ran \(fastRetired) instructions")
  }

  @Test(arguments: [CPUModel.i8086, .i80286, .i80386, .host64])
  func aMixedLoopInRealMode(model: CPUModel) {
    let (event, fastRetired) = expectSameOutcome("real-mode loop, \(model)") {
      let (cpu, ram) = makeCPUReal(model, Self.mixedLoop16)
      ram.load((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 41 &+ 5) }, at: 0x3000)
      cpu.reportExceptions = true
      warm(cpu)
      return (cpu, ram)
    }
    #expect(event == .exception(vector: 3, errorCode: nil))
    #expect(fastRetired > 50 * 20, "the fast handlers ran \(fastRetired) instructions")
  }

  @Test func runStopsAtExactlyTheBudgetIn32BitCode() {
    for budget: UInt64 in [1, 2, 7, 40, 41, 42, 333, 1000] {
      let (looped, loopedRAM) = makeCPU32(Self.mixedLoop32)
      _ = looped.run(budget: 5)
      let (stepped, steppedRAM) = makeCPU32(Self.mixedLoop32)
      for _ in 0..<5 { _ = stepped.step() }
      #expect(looped.run(budget: budget) == .budgetExhausted)
      for _ in 0..<budget { _ = stepped.step() }
      #expect(looped.instructionsRetired == 5 + budget)
      let diff = differences(snapshot(looped, loopedRAM), snapshot(stepped, steppedRAM))
      #expect(diff.isEmpty, "budget \(budget), run vs steps: \(diff)")
    }
  }

  /// A word at offset FFFFh: the 8086 wraps it to offset 0, later chips fault (#GP in real mode).
  @Test(arguments: [CPUModel.i8086, .i80286, .i80386, .host64])
  func aWordAtTheEndOfASegment(model: CPUModel) {
    // mov ax, [0xFFFF] twice (the second from the decode cache); inc word [0xFFFF]; push ax at SP = 1; int3
    let code: [UInt8] = [0xA1, 0xFF, 0xFF, 0xA1, 0xFF, 0xFF, 0xFF, 0x06, 0xFF, 0xFF, 0xBC, 0x01, 0x00, 0x50, 0xCC]
    expectSameOutcome("\(model)") {
      let (cpu, ram) = makeCPUReal(model, code)
      ram.load([0x12, 0x34], at: 0xFFFF)
      ram.load([0x56], at: 0)
      cpu.reportExceptions = true
      warm(cpu)
      return (cpu, ram)
    }
  }

  // MARK: Segments the fast path must leave to the general path

  /// `mov ds, ax` (AX = `selector`), then with EBX = `offset`: a dword load, a store, an ADD to
  /// memory at +4 and a PUSH; each pair of runs must fault (or not) identically.
  @Test(arguments: [
    (Sel.data, UInt32(0x3000), nil as CPUEvent?),
    (Sel.small, 0x0FF8, nil),  // base 0x4000: the store lands at 0x4FF8
    (Sel.small, 0x0FFC, .exception(vector: 13, errorCode: 0)),  // ADD at +4 crosses the limit
    (Sel.small, 0x0FFE, .exception(vector: 13, errorCode: 0)),  // the load crosses the limit
    (Sel.expandDown, 0x3000, nil),  // above the limit: valid
    (Sel.expandDown, 0x2FFC, .exception(vector: 13, errorCode: 0)),  // at or below the limit
    (Sel.readOnly, 0x3000, .exception(vector: 13, errorCode: 0)),  // the store
  ])
  func dataSegments(selector: UInt16, offset: UInt32, fault: CPUEvent?) {
    // mov ax, sel; mov ds, ax; mov ecx, [ebx]; mov [ebx], edx; add [ebx+4], ecx; ...
    // mov esi, [ebx] (again, from the decode cache); int3
    let code: [UInt8] = [
      0x66, 0xB8, UInt8(selector), 0x00, 0x8E, 0xD8, 0x8B, 0x0B, 0x89, 0x13, 0x01, 0x4B, 0x04, 0x8B, 0x33, 0xCC,
    ]
    let (event, _) = expectSameOutcome("DS = \(selector), EBX = \(offset)") {
      let (cpu, ram) = makeCPU32(code)
      cpu.state.setGPR(Reg.rbx, UInt64(offset))
      cpu.state.setGPR(Reg.rdx, 0x1122_3344)
      ram.load((0..<256).map { UInt8($0) }, at: 0x2F00)
      ram.load((0..<256).map { UInt8($0) }, at: 0x4F00)
      return (cpu, ram)
    }
    #expect(event == (fault ?? .exception(vector: 3, errorCode: nil)))
  }

  /// SS loaded with a 16-bit stack (B = 0): PUSH/POP/CALL/RET move SP, not ESP (bits 31:16 of
  /// ESP stay), and a push below SP = 0 wraps to FFFEh, where a dword no longer fits in a segment
  /// of limit FFFFh: #SS(0). With a 4 GiB limit only the B bit keeps the pushes below 64 KiB.
  @Test(arguments: [
    (Sel.stack16, UInt32(0x0001_0100), false), (Sel.stack16, 0x0001_0002, true), (Sel.bigStack16, 0x0001_1100, false),
  ])
  func aSixteenBitStack(selector: UInt16, esp: UInt32, faults: Bool) {
    // mov ax, sel; mov ss, ax; mov esp, imm; push eax; push ebx; pop ecx; call +0; pop edx;
    // push eax; push eax; push eax; int3
    var code: [UInt8] = [0x66, 0xB8, UInt8(selector), 0x00, 0x8E, 0xD0, 0xBC]
    code += (0..<4).map { UInt8(truncatingIfNeeded: esp >> (8 * $0)) }
    code += [0x50, 0x53, 0x59, 0xE8, 0x00, 0x00, 0x00, 0x00, 0x5A, 0x50, 0x50, 0x50, 0xCC]
    let (event, _) = expectSameOutcome("SS = \(selector), ESP = \(esp)") {
      let (cpu, ram) = makeCPU32(code)
      cpu.state.setGPR(Reg.rax, 0xAAAA_0001)
      cpu.state.setGPR(Reg.rbx, 0xBBBB_0002)
      return (cpu, ram)
    }
    #expect(event == (faults ? .exception(vector: 12, errorCode: 0) : .exception(vector: 3, errorCode: nil)))
  }

  /// CS loaded by a far jump and by IRET with a code segment of limit 1FFFh: near branches
  /// within it run, one past it raises #GP(0) at the branch, in both paths.
  @Test(arguments: [false, true])
  func aCodeSegmentWithALimit(throughIRET: Bool) {
    // 0x1000: jmp far 0x30:0x1010, or push eflags / push 0x30 / push 0x1010 / iretd
    // 0x1010: jmp short +2; nop; nop; call 0x1020 (pushes, returns), 0x1018: jmp 0x2100 (beyond the limit)
    var code = [UInt8](repeating: 0x90, count: 0x40)
    let entry: [UInt8] =
      throughIRET
      ? [0x9C, 0x6A, 0x30, 0x68, 0x10, 0x10, 0x00, 0x00, 0xCF] : [0xEA, 0x10, 0x10, 0x00, 0x00, 0x30, 0x00]
    code.replaceSubrange(0..<entry.count, with: entry)
    code.replaceSubrange(
      0x10..<0x1D, with: [0xEB, 0x02, 0x90, 0x90, 0xE8, 0x07, 0x00, 0x00, 0x00, 0xE9, 0xE3, 0x10, 0x00])
    code[0x1D] = 0
    code.replaceSubrange(0x20..<0x21, with: [0xC3])
    let (event, _) = expectSameOutcome("CS limit 1FFFh, \(throughIRET ? "IRET" : "far jump")") {
      let (cpu, ram) = makeCPU32(code)
      return (cpu, ram)
    }
    #expect(event == .exception(vector: 13, errorCode: 0))
  }

  /// A task switch (JMP to a TSS) loads DS with a read-only segment: the new task's store faults
  /// #GP(0) in both paths, its loads run.
  @Test func aTaskSwitchLoadsAReadOnlyDataSegment() {
    // 0x1000: jmp far tss2:0; the new task at 0x1100: mov eax, [0x3000]; mov [0x3000], eax; int3
    var code = [UInt8](repeating: 0x90, count: 0x120)
    code.replaceSubrange(0..<7, with: [0xEA, 0, 0, 0, 0, UInt8(Sel.tss2), 0x00])
    code.replaceSubrange(0x100..<0x10B, with: [0xA1, 0x00, 0x30, 0x00, 0x00, 0xA3, 0x00, 0x30, 0x00, 0x00, 0xCC])
    let (event, _) = expectSameOutcome("task switch") {
      let (cpu, ram) = makeCPU32(code)
      func put32(_ offset: Int, _ v: UInt32) {
        ram.bytes.storeBytes(of: v, toByteOffset: 0x6000 + offset, as: UInt32.self)
      }
      put32(0x20, 0x1100)  // EIP
      put32(0x24, 0x2)  // EFLAGS
      put32(0x38, 0x7000)  // ESP
      put32(0x48, UInt32(Sel.data))  // ES
      put32(0x4C, UInt32(Sel.code))  // CS
      put32(0x50, UInt32(Sel.data))  // SS
      put32(0x54, UInt32(Sel.readOnly))  // DS
      ram.load([0x78, 0x56, 0x34, 0x12], at: 0x3000)
      return (cpu, ram)
    }
    #expect(event == .exception(vector: 13, errorCode: 0))
  }

  /// The same program under 32-bit paging, with the page holding the data unmapped on the second
  /// pass: the fast form declines, the general path raises #PF with the same error code and CR2.
  @Test func aPageFaultUnderPaging() {
    // again: mov eax, [edi]; add edi, 0x1000; jmp again
    let code: [UInt8] = [0x8B, 0x07, 0x81, 0xC7, 0x00, 0x10, 0x00, 0x00, 0xEB, 0xF6]
    let (event, _) = expectSameOutcome("paging") {
      let (cpu, ram) = makeCPU32(code, paging: true)
      // Unmap 0x5000.
      ram.bytes.storeBytes(of: UInt32(0), toByteOffset: Self.pageDirectory + 0x1000 + 4 * 5, as: UInt32.self)
      cpu.state.setGPR(Reg.rdi, 0x3000)
      return (cpu, ram)
    }
    #expect(event == .exception(vector: 14, errorCode: 0))
  }
}
