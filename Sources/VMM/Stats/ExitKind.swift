/// The statistics key of a `VMExit`: one case per exit reason, usable as an array index so that
/// recording an exit needs no hashing and no allocation.
public enum ExitKind: Int, CaseIterable, Sendable {
  case ioOut, ioIn, mmioRead, mmioWrite, halt, shutdown, hypercall, cpuid, msrRead, msrWrite, rdtsc
  case invlpg, exception, interruptWindow, kicked, budgetExhausted, internalError, floatingPointError

  /// The statistics bucket of `exit`.
  public init(_ exit: VMExit) {
    switch exit {
    case .io(let a): self = a.isWrite ? .ioOut : .ioIn
    case .mmio(let a): self = a.isWrite ? .mmioWrite : .mmioRead
    case .halt: self = .halt
    case .shutdown: self = .shutdown
    case .hypercall: self = .hypercall
    case .cpuid: self = .cpuid
    case .msrRead: self = .msrRead
    case .msrWrite: self = .msrWrite
    case .rdtsc: self = .rdtsc
    case .invlpg: self = .invlpg
    case .exception: self = .exception
    case .interruptWindow: self = .interruptWindow
    case .kicked: self = .kicked
    case .budgetExhausted: self = .budgetExhausted
    case .internalError: self = .internalError
    case .floatingPointError: self = .floatingPointError
    }
  }

  /// Stable name, used in statistics tables and JSON (`VMExit.reasonName`).
  public var name: String {
    switch self {
    case .ioOut: return "io-out"
    case .ioIn: return "io-in"
    case .mmioRead: return "mmio-read"
    case .mmioWrite: return "mmio-write"
    case .halt: return "hlt"
    case .shutdown: return "shutdown"
    case .hypercall: return "hypercall"
    case .cpuid: return "cpuid"
    case .msrRead: return "msr-read"
    case .msrWrite: return "msr-write"
    case .rdtsc: return "rdtsc"
    case .invlpg: return "invlpg"
    case .exception: return "exception"
    case .interruptWindow: return "interrupt-window"
    case .kicked: return "kicked"
    case .budgetExhausted: return "budget"
    case .internalError: return "internal-error"
    case .floatingPointError: return "ferr"
    }
  }
}
