import CNative

/// Generates random programs of x86-64 instructions weighted by class, with the helpers that keep
/// memory operands inside the sandbox and undefined flags from leaking into compared state.
public struct ProgramGenerator: Sendable {
  public let classes: [InstructionClass]
  public let features: Set<HostFeature>
  var rng: RandomSource
  private let totalWeight: Int

  /// Items built for the current program, and the flags undefined so far.
  var items: [GeneratedInstruction] = []
  var undefined: UInt64 = 0

  public init(classes: [InstructionClass], features: Set<HostFeature>, seed: UInt64) {
    self.classes = classes.isEmpty ? [.alu] : classes
    self.features = features
    rng = RandomSource(seed: seed)
    totalWeight = self.classes.reduce(0) { $0 + $1.weight }
  }

  /// A random initial state: interesting register values, RSP in the middle of the sandbox.
  public mutating func initialState() -> MachineState {
    var gpr = (0..<16).map { _ in rng.interesting(bits: 64) }
    gpr[4] = CN_SANDBOX_ADDR + 0x1000 - UInt64(rng.chance(0.2) ? rng.below(8) : 0)
    let flags = (rng.next() & 0x0CD5) | 0x2
    var sandbox = [UInt8](repeating: 0, count: Int(CN_SANDBOX_SIZE))
    let dense = rng.chance(0.8)
    for i in sandbox.indices where dense || rng.chance(0.1) {
      sandbox[i] = UInt8(truncatingIfNeeded: rng.next())
    }
    // XMM0-15 random (as lanes of interesting values) when SSE instructions are drawn; MXCSR and
    // the x87 registers as a fresh process has them.
    var fx = MachineState.defaultFX
    if classes.contains(.mmx) {
      // MM0-7 (the x87 registers' low halves) and their exponent bytes random; TOP and the tags
      // as a fresh process has them (empty).
      for r in 0..<8 {
        for j in 0..<10 { fx[FXLayout.st(r) + j] = UInt8(truncatingIfNeeded: rng.next()) }
      }
    }
    if classes.contains(.x87) || classes.contains(.x87All) || classes.contains(.x87Transcendental) {
      randomizeX87(&fx)
      sprinkleX87Operands(&sandbox)
    }
    if classes.contains(.sse) || classes.contains(.sse4) || classes.contains(.mmx) || classes.contains(.rcp) {
      for r in 0..<16 {
        for half in 0..<2 {
          let v = sseHalf()
          for j in 0..<8 { fx[FXLayout.xmm(r) + 8 * half + j] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(j))) }
        }
      }
      if classes.contains(.sse4) {
        // Some registers as text from a small alphabet (zeros included), so the string compares
        // find matches, ranges and terminators.
        let alphabet: [UInt8] = [0x00, 0x41, 0x42, 0x61, 0x62, 0x63, 0x80, 0xFF]
        for r in 0..<16 where rng.chance(0.3) {
          for j in 0..<16 { fx[FXLayout.xmm(r) + j] = rng.pick(alphabet) }
        }
      }
      let m = randomMXCSR()
      for j in 0..<4 { fx[FXLayout.mxcsr + j] = UInt8(truncatingIfNeeded: m >> (8 * UInt32(j))) }
    }
    return MachineState(gpr: gpr, rip: CN_CODE_ADDR, rflags: flags, sandbox: sandbox, fx: fx)
  }

  /// A program of `count` instructions under test (plus their helpers).
  public mutating func program(count: Int) -> TestProgram {
    items = []
    undefined = 0
    for _ in 0..<count { emitRandom(pickClass()) }
    return TestProgram(instructions: items)
  }

  mutating func pickClass() -> InstructionClass {
    var r = rng.below(totalWeight)
    for c in classes {
      if r < c.weight { return c }
      r -= c.weight
    }
    return classes[0]
  }

  // MARK: - bookkeeping

  /// Appends an instruction, updating the undefined-flags set.
  mutating func add(
    _ bytes: [UInt8], _ c: InstructionClass, setup: Bool = false, defines: UInt64 = 0, undefines: UInt64 = 0,
    reads: UInt64 = 0, maySkip: Bool = false
  ) {
    if reads & undefined != 0 { defineFlags() }
    if maySkip {
      undefined |= undefines
    } else {
      undefined = (undefined & ~defines) | undefines
    }
    items.append(
      GeneratedInstruction(
        bytes: bytes, instructionClass: c, isSetup: setup, undefinedFlags: undefines, definedFlags: defines,
        undefinedAfter: undefined))
  }

  /// CMP r64, r64: gives all six arithmetic flags defined values before an instruction reads them.
  mutating func defineFlags() {
    var e = Encoder()
    e.emit(size: 64, opcode: [0x39], reg: anyRegister(), rm: .register(anyRegister()))
    undefined = 0
    items.append(
      GeneratedInstruction(
        bytes: e.bytes, instructionClass: .alu, isSetup: true, undefinedFlags: 0, definedFlags: FlagBits.arithmetic,
        undefinedAfter: 0))
  }

  /// MOV r32, imm32 (zero-extends to 64 bits).
  mutating func setRegister(_ r: Int, _ value: UInt32, _ c: InstructionClass) {
    var e = Encoder()
    e.emit(opcode: [0xB8], opcodeRegister: r, immediate: littleEndian(UInt64(value), count: 4))
    add(e.bytes, c, setup: true)
  }

  // MARK: - operands

  /// Any register but RSP (a destination).
  mutating func destination() -> Int {
    let r = rng.below(15)
    return r >= 4 ? r + 1 : r
  }

  mutating func anyRegister() -> Int { rng.below(16) }

  mutating func operandSize(allow8: Bool = true) -> Int {
    allow8 ? rng.pick([8, 16, 32, 64, 32, 64]) : rng.pick([16, 32, 64, 32, 64])
  }

  /// A sandbox address away from its edges.
  mutating func sandboxAddress(margin: Int = 0x200) -> UInt32 {
    UInt32(CN_SANDBOX_ADDR) + UInt32(margin + rng.below(Int(CN_SANDBOX_SIZE) - 2 * margin))
  }

  /// A memory operand inside the sandbox, emitting the MOVs that point its registers there.
  /// Rarely (2%) it points at or just before the unmapped guard page instead, to test #PF.
  mutating func memoryOperand(_ c: InstructionClass, avoiding: Set<Int> = []) -> RMOperand {
    if rng.chance(0.1) {
      // RSP always points into the sandbox.
      return .memory(base: 4, index: nil, scale: 1, displacement: Int32(rng.below(128)) - 64)
    }
    var base = destination()
    while avoiding.contains(base) { base = destination() }
    let guardPage = rng.chance(0.02)
    let address =
      guardPage ? UInt32(CN_SANDBOX_ADDR + UInt64(CN_SANDBOX_SIZE)) - 16 + UInt32(rng.below(80)) : sandboxAddress()
    setRegister(base, address, c)
    var index: Int?
    var scale = 1
    if rng.chance(0.3) {
      var i = destination()
      while i == base || avoiding.contains(i) { i = destination() }
      index = i
      scale = rng.pick([1, 2, 4, 8])
      setRegister(i, UInt32(rng.below(32)), c)
    }
    // Guard-page addresses start up to 16 bytes below the sandbox's end (no displacement) so
    // accesses also split across the last sandbox page and the unmapped one.
    let displacement: Int32
    if guardPage {
      displacement = 0
    } else {
      switch rng.below(3) {
      case 0: displacement = 0
      case 1: displacement = Int32(rng.below(256)) - 128
      default: displacement = Int32(rng.below(512)) - 256
      }
    }
    return .memory(base: base, index: index, scale: scale, displacement: displacement)
  }

  /// A register (70%) or sandbox memory operand.
  mutating func registerOrMemory(_ c: InstructionClass, destination isDestination: Bool = true) -> RMOperand {
    if rng.chance(0.3) { return memoryOperand(c) }
    return .register(isDestination ? destination() : anyRegister())
  }

  mutating func immediate(size: Int) -> [UInt8] {
    let n = size == 8 ? 1 : size == 16 ? 2 : 4
    return littleEndian(rng.interesting(bits: n * 8), count: n)
  }

  /// Flags read by condition code `cc`.
  static func flagsRead(condition cc: Int) -> UInt64 {
    switch cc >> 1 {
    case 0: FlagBits.of
    case 1: FlagBits.cf
    case 2: FlagBits.zf
    case 3: FlagBits.cf | FlagBits.zf
    case 4: FlagBits.sf
    case 5: FlagBits.pf
    case 6: FlagBits.sf | FlagBits.of
    default: FlagBits.zf | FlagBits.sf | FlagBits.of
    }
  }

  // MARK: - dispatch

  mutating func emitRandom(_ c: InstructionClass) {
    switch c {
    case .alu: emitALU()
    case .shift: emitShift()
    case .shiftDouble: emitShiftDouble()
    case .mulDiv: emitMulDiv()
    case .bitTest: emitBitTest()
    case .bitScan: emitBitScan()
    case .tzcntLzcnt: emitTzcntLzcnt()
    case .popcnt: emitPopcnt()
    case .condition: emitCondition()
    case .exchange: emitExchange()
    case .string: emitString()
    case .stack: emitStack()
    case .lea: emitLEA()
    case .move: emitMove()
    case .bswap: emitBswap()
    case .convert: emitConvert()
    case .flags: emitFlags()
    case .branch: emitBranch()
    case .loop: emitLoop()
    case .enterLeave: emitEnterLeave()
    case .invalid: emitInvalid()
    case .movbe: emitMovbe()
    case .bmi: emitBMI()
    case .sse: emitSSE()
    case .sse4: emitSSE4()
    case .mmx: emitMMX()
    case .rcp: emitApproximation()
    case .x87: emitX87(from: X87Form.implementedForms, .x87)
    case .x87All: emitX87(from: X87Form.all, .x87All)
    case .x87Transcendental: emitX87Transcendental()
    case .segmentLoad, .segmentMove, .stackSize, .string16, .segmentLimit:
      // Compatibility-mode classes (CompatProgramGenerator); never selected for 64-bit programs.
      emitALU()
    }
  }
}
