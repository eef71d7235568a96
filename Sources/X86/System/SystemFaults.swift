/// Exception vectors (SDM vol. 3, table "Protected-Mode Exceptions and Interrupts").
public enum ExceptionVector {
  /// #DE.
  public static let divideError: UInt8 = 0
  /// #DB.
  public static let debug: UInt8 = 1
  /// NMI.
  public static let nmi: UInt8 = 2
  /// #BP (INT3).
  public static let breakpoint: UInt8 = 3
  /// #OF (INTO).
  public static let overflow: UInt8 = 4
  /// #BR (BOUND).
  public static let boundRange: UInt8 = 5
  /// #UD.
  public static let invalidOpcode: UInt8 = 6
  /// #NM.
  public static let deviceNotAvailable: UInt8 = 7
  /// #DF.
  public static let doubleFault: UInt8 = 8
  /// #TS.
  public static let invalidTSS: UInt8 = 10
  /// #NP.
  public static let segmentNotPresent: UInt8 = 11
  /// #SS.
  public static let stackFault: UInt8 = 12
  /// #GP.
  public static let generalProtection: UInt8 = 13
  /// #PF.
  public static let pageFault: UInt8 = 14
  /// #MF.
  public static let x87FloatingPoint: UInt8 = 16
  /// #AC.
  public static let alignmentCheck: UInt8 = 17
  /// #MC.
  public static let machineCheck: UInt8 = 18
  /// #XM.
  public static let simdFloatingPoint: UInt8 = 19
  /// #VE.
  public static let virtualization: UInt8 = 20
  /// #CP.
  public static let controlProtection: UInt8 = 21

  /// Whether the exception pushes an error code in protected and IA-32e mode.
  public static func hasErrorCode(_ vector: UInt8) -> Bool {
    switch vector {
    case 8, 10, 11, 12, 13, 14, 17, 21: return true
    default: return false
    }
  }

  /// Vector used by `Fault.notImplemented`: not an architectural exception.
  public static let unimplemented: UInt8 = 0xFF
}

/// Architectural paths the system layer does not implement yet. They are thrown as
/// `Fault.exception(vector: ExceptionVector.unimplemented, errorCode: rawValue)` and must become
/// an internal-error exit, never a guest-visible exception.
public enum UnimplementedFeature: UInt32, Sendable, CustomStringConvertible {
  /// `SegmentLoader.checkFarTransfer` was given a call gate (use `FarTransfers`, which handles them).
  case callGate = 2
  /// A TSS or task gate given to `SegmentLoader.checkFarTransfer` (use `FarTransfers`).
  case taskSwitch = 3
  /// A real-address-mode event given to `InterruptDelivery` (real mode is delivered by the CPU core,
  /// which knows each CPU model's stack and FLAGS behaviour).
  case realModeDelivery = 4

  /// The feature in a few words.
  public var description: String {
    switch self {
    case .callGate: return "call gate passed to the direct far-transfer check"
    case .taskSwitch: return "TSS or task gate passed to the direct far-transfer check"
    case .realModeDelivery: return "real-mode event passed to the IDT delivery (the CPU core delivers it)"
    }
  }
}

/// Shorthands for the faults the system layer raises (the core's `Fault` type is the one error
/// type of the execution path, so the core calls the system layer with a plain `try`).
extension Fault {
  /// #UD.
  public static var ud: Fault { .exception(vector: ExceptionVector.invalidOpcode, errorCode: nil) }
  /// #GP(code).
  public static func gp(_ code: UInt32 = 0) -> Fault {
    .exception(vector: ExceptionVector.generalProtection, errorCode: code)
  }
  /// #NP(code).
  public static func np(_ code: UInt32) -> Fault {
    .exception(vector: ExceptionVector.segmentNotPresent, errorCode: code)
  }
  /// #SS(code).
  public static func ss(_ code: UInt32) -> Fault { .exception(vector: ExceptionVector.stackFault, errorCode: code) }
  /// #TS(code).
  public static func ts(_ code: UInt32) -> Fault { .exception(vector: ExceptionVector.invalidTSS, errorCode: code) }
  /// #PF from a page-walk result (the caller sets CR2 = `fault.address`).
  public static func pf(_ fault: PageFault) -> Fault {
    .exception(vector: ExceptionVector.pageFault, errorCode: fault.errorCode)
  }
  /// A path the model does not implement (see `UnimplementedFeature`).
  public static func notImplemented(_ feature: UnimplementedFeature) -> Fault {
    .exception(vector: ExceptionVector.unimplemented, errorCode: feature.rawValue)
  }

  /// The unimplemented feature this fault reports, if it is one.
  public var unimplementedFeature: UnimplementedFeature? {
    guard case .exception(ExceptionVector.unimplemented, let code?) = self else { return nil }
    return UnimplementedFeature(rawValue: code)
  }

  /// The exception vector (nil for an embedder event).
  public var exceptionVector: UInt8? {
    if case .exception(let vector, _) = self { return vector }
    return nil
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
