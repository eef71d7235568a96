import CNative
import X86

/// Arithmetic flag bits of RFLAGS.
public enum FlagBits {
  public static let cf: UInt64 = 1 << 0
  public static let pf: UInt64 = 1 << 2
  public static let af: UInt64 = 1 << 4
  public static let zf: UInt64 = 1 << 6
  public static let sf: UInt64 = 1 << 7
  public static let df: UInt64 = 1 << 10
  public static let of: UInt64 = 1 << 11
  public static let arithmetic: UInt64 = cf | pf | af | zf | sf | of
  /// The bits compared between host and model: the arithmetic flags and DF.
  public static let compared: UInt64 = arithmetic | df

  /// "CF PF ..." for a mask.
  public static func names(_ mask: UInt64) -> String {
    let all: [(UInt64, String)] = [(cf, "CF"), (pf, "PF"), (af, "AF"), (zf, "ZF"), (sf, "SF"), (df, "DF"), (of, "OF")]
    let list = all.filter { mask & $0.0 != 0 }.map(\.1)
    return list.isEmpty ? "-" : list.joined(separator: " ")
  }
}

/// One generated instruction (or a helper that sets up registers for the next one).
public struct GeneratedInstruction: Sendable {
  public var bytes: [UInt8]
  public var instructionClass: InstructionClass
  /// A helper (MOV reg, imm; CMP to define flags; guard branch) rather than the instruction under test.
  public var isSetup: Bool
  /// Flags the SDM leaves undefined after this instruction.
  public var undefinedFlags: UInt64
  /// Flags this instruction always sets to defined values.
  public var definedFlags: UInt64
  /// Flags whose values are undefined after this instruction (conservative, whole program so far).
  public var undefinedAfter: UInt64 = 0
}

/// A generated program: instructions laid out from CN_CODE_ADDR.
public struct TestProgram: Sendable {
  public var instructions: [GeneratedInstruction]
  /// The code size the instructions are encoded for.
  public var codeMode: CodeMode
  /// RIP (the offset in CS) of the first instruction: CN_CODE_ADDR, or 0 in a 16-bit code segment
  /// based at the code page.
  public var origin: UInt64

  public init(instructions: [GeneratedInstruction], codeMode: CodeMode = .bits64, origin: UInt64 = CN_CODE_ADDR) {
    self.instructions = instructions
    self.codeMode = codeMode
    self.origin = origin
  }

  /// The same program cut to its first `count` instructions.
  public func prefix(_ count: Int) -> TestProgram {
    TestProgram(instructions: Array(instructions.prefix(count)), codeMode: codeMode, origin: origin)
  }

  /// The machine code.
  public var code: [UInt8] { instructions.flatMap(\.bytes) }

  /// Whether the program has approximating instructions (the `rcp` class), whose XMM results
  /// are compared with a tolerance.
  public var hasApproximations: Bool {
    instructions.contains { $0.instructionClass == .rcp || $0.instructionClass == .x87Transcendental }
  }

  /// The RIP (offset in CS) of each instruction.
  public var addresses: [UInt64] {
    var a = origin
    return instructions.map { i in
      defer { a += UInt64(i.bytes.count) }
      return a
    }
  }

  /// Flags undefined when execution stopped at `rip`: before the instruction there, or at the end.
  public func undefinedFlags(stoppedAt rip: UInt64) -> UInt64 {
    let addresses = self.addresses
    if let i = addresses.firstIndex(of: rip) {
      return i == 0 ? 0 : instructions[i - 1].undefinedAfter
    }
    return instructions.last?.undefinedAfter ?? 0
  }

  /// Number of instructions under test (not helpers).
  public var testedCount: Int { instructions.filter { !$0.isSetup }.count }
}

/// Registers, flags, the x87/SSE state and sandbox memory: the state compared between the host and
/// the model.
public struct MachineState: Sendable, Equatable {
  /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8...R15.
  public var gpr: [UInt64]
  /// RIP: in compatibility mode the offset in CS.
  public var rip: UInt64
  public var rflags: UInt64
  /// Bytes at CN_SANDBOX_ADDR.
  public var sandbox: [UInt8]
  /// Compatibility mode: the selectors of ES CS SS DS FS GS (Sreg order); empty in 64-bit mode.
  public var segments: [UInt16]
  /// Compatibility mode: the LDT (`CN_LDT_ENTRIES` entries, unchanged by a run); empty in 64-bit mode.
  public var ldt: [LDTEntry]
  /// The x87/SSE state as a `CN_FX_SIZE` (512) byte FXSAVE64 image (Intel SDM layout: FCW at 0,
  /// FSW 2, abridged FTW 4, FOP 6, FIP 8, FDP 16, MXCSR 24, MXCSR_MASK 28, ST0-7/MM0-7 at
  /// 32 + 16 * i, XMM0-15 at 160 + 16 * i); empty when not known. An empty initial image starts a
  /// native run from `MachineState.defaultFX`.
  public var fx: [UInt8]

  public init(
    gpr: [UInt64], rip: UInt64, rflags: UInt64, sandbox: [UInt8], segments: [UInt16] = [], ldt: [LDTEntry] = [],
    fx: [UInt8] = []
  ) {
    self.gpr = gpr
    self.rip = rip
    self.rflags = rflags
    self.sandbox = sandbox
    self.segments = segments
    self.ldt = ldt
    self.fx = fx
  }

  /// True for a compatibility-mode state (it carries selectors and an LDT).
  public var isCompatibility: Bool { !segments.isEmpty }

  /// The names of `segments`, in order.
  public static let segmentNames = ["es", "cs", "ss", "ds", "fs", "gs"]

  /// The FXSAVE64 image of the state after FNINIT and reset: FCW 0x037F, MXCSR 0x1F80 (all
  /// exceptions masked, round to nearest), everything else 0.
  public static let defaultFX: [UInt8] = {
    var image = [UInt8](repeating: 0, count: FXLayout.size)
    image[FXLayout.fcw] = 0x7F
    image[FXLayout.fcw + 1] = 0x03
    image[FXLayout.mxcsr] = 0x80
    image[FXLayout.mxcsr + 1] = 0x1F
    return image
  }()

  /// MXCSR from `fx` (nil when `fx` is not a full image).
  public var mxcsr: UInt32? {
    guard fx.count == FXLayout.size else { return nil }
    return (0..<4).reduce(0) { $0 | UInt32(fx[FXLayout.mxcsr + $1]) << (8 * $1) }
  }

  /// XMM register `index` (0-15) from `fx`, as its 16 bytes in memory order (nil when `fx` is not
  /// a full image).
  public func xmmBytes(_ index: Int) -> ArraySlice<UInt8>? {
    guard fx.count == FXLayout.size, (0..<16).contains(index) else { return nil }
    let start = FXLayout.xmm(index)
    return fx[start..<start + 16]
  }

  public static let registerNames = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
  ]
}

/// Byte offsets in an FXSAVE64 image (Intel SDM, FXSAVE).
public enum FXLayout {
  /// Size of the image.
  public static let size = Int(CN_FX_SIZE)
  /// x87 control word (16 bits).
  public static let fcw = 0
  /// x87 status word (16 bits).
  public static let fsw = 2
  /// Abridged x87 tag word (8 bits, one per register, 1 = valid).
  public static let ftw = 4
  /// MXCSR (32 bits).
  public static let mxcsr = 24
  /// MXCSR_MASK (32 bits): the MXCSR bits the CPU supports.
  public static let mxcsrMask = 28
  /// ST(i) / MMi, 10 bytes in a 16-byte slot.
  public static func st(_ i: Int) -> Int { 32 + 16 * i }
  /// XMMi, 16 bytes.
  public static func xmm(_ i: Int) -> Int { 160 + 16 * i }
}

/// How a run ended.
public enum RunOutcome: Sendable, Equatable, CustomStringConvertible {
  /// Reached the INT3 after the code.
  case completed
  /// Raised exception `vector` at `state.rip`.
  case fault(vector: Int, errorCode: UInt64)
  /// Something else stopped the run (model event, timeout, crashed child).
  case other(String)

  public var description: String {
    switch self {
    case .completed: "completed"
    case .fault(let v, let e): "fault \(vectorName(v)) (vector \(v), error code \(hex(e)))"
    case .other(let s): s
    }
  }
}

/// The final state and outcome of a run.
public struct RunResult: Sendable {
  public var outcome: RunOutcome
  public var state: MachineState
  /// CR2 after a page fault (0 otherwise).
  public var faultAddress: UInt64 = 0
}

/// Mnemonic of an exception vector.
public func vectorName(_ v: Int) -> String {
  let names = [
    0: "#DE", 1: "#DB", 3: "#BP", 4: "#OF", 5: "#BR", 6: "#UD", 7: "#NM", 8: "#DF", 10: "#TS", 11: "#NP", 12: "#SS",
    13: "#GP", 14: "#PF", 16: "#MF", 17: "#AC", 18: "#MC", 19: "#XM",
  ]
  return names[v] ?? "vector \(v)"
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
