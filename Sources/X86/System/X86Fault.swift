/// A guest-visible exception raised by the system layer (SDM vol. 3, "Exception and Interrupt
/// Reference"): the vector, the error code when the exception has one, and for #PF the faulting
/// linear address that becomes CR2.
///
/// `unimplemented` is not a guest fault: it marks an architectural path the model does not have yet
/// (for example a hardware task switch). The engine must stop with an internal-error exit carrying
/// the text instead of delivering anything.
public struct X86Fault: Error, Sendable, Equatable, CustomStringConvertible {
  public var vector: UInt8
  public var errorCode: UInt32?
  /// CR2 for a page fault; 0 otherwise.
  public var address: UInt64
  /// Non-nil when the model reached a path it does not implement (not a guest-visible fault).
  public var unimplemented: String?

  public init(vector: UInt8, errorCode: UInt32? = nil, address: UInt64 = 0, unimplemented: String? = nil) {
    self.vector = vector
    self.errorCode = errorCode
    self.address = address
    self.unimplemented = unimplemented
  }

  /// Exception vectors (SDM vol. 3, table "Protected-Mode Exceptions and Interrupts").
  public enum Vector {
    public static let divideError: UInt8 = 0
    public static let debug: UInt8 = 1
    public static let nmi: UInt8 = 2
    public static let breakpoint: UInt8 = 3
    public static let overflow: UInt8 = 4
    public static let boundRange: UInt8 = 5
    public static let invalidOpcode: UInt8 = 6
    public static let deviceNotAvailable: UInt8 = 7
    public static let doubleFault: UInt8 = 8
    public static let invalidTSS: UInt8 = 10
    public static let segmentNotPresent: UInt8 = 11
    public static let stackFault: UInt8 = 12
    public static let generalProtection: UInt8 = 13
    public static let pageFault: UInt8 = 14
    public static let x87FloatingPoint: UInt8 = 16
    public static let alignmentCheck: UInt8 = 17
    public static let machineCheck: UInt8 = 18
    public static let simdFloatingPoint: UInt8 = 19
    public static let virtualization: UInt8 = 20
    public static let controlProtection: UInt8 = 21
  }

  /// #UD.
  public static let ud = X86Fault(vector: Vector.invalidOpcode)
  /// #GP with an error code (0 for most checks, a selector error code for descriptor checks).
  public static func gp(_ code: UInt32 = 0) -> X86Fault { X86Fault(vector: Vector.generalProtection, errorCode: code) }
  /// #NP(code).
  public static func np(_ code: UInt32) -> X86Fault { X86Fault(vector: Vector.segmentNotPresent, errorCode: code) }
  /// #SS(code).
  public static func ss(_ code: UInt32) -> X86Fault { X86Fault(vector: Vector.stackFault, errorCode: code) }
  /// #TS(code).
  public static func ts(_ code: UInt32) -> X86Fault { X86Fault(vector: Vector.invalidTSS, errorCode: code) }
  /// #PF from the page walker's result.
  public static func pf(_ fault: PageFault) -> X86Fault {
    X86Fault(vector: Vector.pageFault, errorCode: fault.errorCode, address: fault.address)
  }
  /// A path the model does not implement; the engine reports it as an internal error.
  public static func notImplemented(_ what: String) -> X86Fault {
    X86Fault(vector: 0xFF, unimplemented: what)
  }

  /// Whether the vector pushes an error code in protected and long mode.
  public static func hasErrorCode(_ vector: UInt8) -> Bool {
    switch vector {
    case 8, 10, 11, 12, 13, 14, 17, 21: return true
    default: return false
    }
  }

  public var description: String {
    if let unimplemented { return "not implemented: \(unimplemented)" }
    var s = "#\(X86Fault.mnemonic(vector))"
    if let errorCode { s += "(0x\(String(errorCode, radix: 16)))" }
    if vector == Vector.pageFault { s += " at 0x\(String(address, radix: 16))" }
    return s
  }

  static func mnemonic(_ vector: UInt8) -> String {
    let names = [
      "DE", "DB", "NMI", "BP", "OF", "BR", "UD", "NM", "DF", "CSO", "TS", "NP", "SS", "GP", "PF", "15", "MF",
      "AC", "MC", "XM", "VE", "CP",
    ]
    return Int(vector) < names.count ? names[Int(vector)] : "INT\(vector)"
  }
}

/// Builds the error code of a selector-related fault (SDM vol. 3, "Error Code"): the selector's
/// index and TI bit, with EXT (bit 0) set when the fault happened while delivering an external
/// event or an earlier exception, and IDT (bit 1) when the index refers to an IDT gate.
public enum SelectorErrorCode {
  /// Error code for a GDT/LDT selector.
  public static func selector(_ selector: UInt16, external: Bool) -> UInt32 {
    UInt32(selector & 0xFFFC) | (external ? 1 : 0)
  }
  /// Error code for IDT entry `vector`.
  public static func idt(_ vector: UInt8, external: Bool) -> UInt32 {
    UInt32(vector) << 3 | 2 | (external ? 1 : 0)
  }
}
