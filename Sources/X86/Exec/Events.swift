/// Access to guest-physical memory. The CPU caches the returned pointers per 4 KiB page (see
/// `CPU.invalidateTLB()`).
public protocol PhysicalMemory: AnyObject {
  /// A host pointer to `length` bytes at `physical`, or nil when the range is not RAM (the access
  /// becomes an MMIO event). Never called across a 4 KiB page boundary.
  func hostPointer(physical: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer?

  /// Atomically replaces the `size` (1, 2, 4, 8) bytes at `pointer` (from `hostPointer`) with
  /// `desired` if they hold `expected`; true when it did. Used for LOCK-prefixed instructions when
  /// `CPU.atomicUpdates` is on. The default is not atomic (one CPU, one thread).
  func compareExchange(at pointer: UnsafeMutableRawPointer, size: Int, expected: UInt64, desired: UInt64) -> Bool

  /// Atomically loads `size` (1, 2, 4, 8) bytes at `pointer`. The default is a plain load.
  func atomicLoad(at pointer: UnsafeMutableRawPointer, size: Int) -> UInt64
}

extension PhysicalMemory {
  /// A plain compare-then-store: enough when one thread runs every CPU of the memory.
  public func compareExchange(
    at pointer: UnsafeMutableRawPointer, size: Int, expected: UInt64, desired: UInt64
  ) -> Bool {
    guard atomicLoad(at: pointer, size: size) == expected else { return false }
    switch size {
    case 1: pointer.storeBytes(of: UInt8(truncatingIfNeeded: desired), as: UInt8.self)
    case 2: pointer.storeBytes(of: UInt16(truncatingIfNeeded: desired), as: UInt16.self)
    case 4: pointer.storeBytes(of: UInt32(truncatingIfNeeded: desired), as: UInt32.self)
    default: pointer.storeBytes(of: desired, as: UInt64.self)
    }
    return true
  }

  /// A plain load.
  public func atomicLoad(at pointer: UnsafeMutableRawPointer, size: Int) -> UInt64 {
    switch size {
    case 1: return UInt64(pointer.load(as: UInt8.self))
    case 2: return UInt64(pointer.loadUnaligned(as: UInt16.self))
    case 4: return UInt64(pointer.loadUnaligned(as: UInt32.self))
    default: return pointer.loadUnaligned(as: UInt64.self)
    }
  }
}

/// Why `CPU.step()`/`CPU.run(budget:)` returned to the embedder.
public enum CPUEvent: Sendable, Equatable {
  /// IN: answer with `CPU.complete(value:)`, then step again (the instruction re-executes).
  case portIn(port: UInt16, size: Int)
  /// OUT: perform it, then step again.
  case portOut(port: UInt16, size: Int, value: UInt64)
  /// A read of non-RAM: answer with `CPU.complete(value:)`, then step again.
  case mmioRead(address: UInt64, size: Int)
  /// A write to non-RAM: perform it, then step again.
  case mmioWrite(address: UInt64, size: Int, value: UInt64)
  /// HLT retired.
  case halt
  /// FERR#: a waiting x87 or MMX instruction found an unmasked x87 exception pending (FSW.ES)
  /// with CR0.NE clear, the PC's MS-DOS compatible error reporting. The instruction has not run.
  /// The embedder answers with `ignoreNumericErrors` set (IGNNE# asserted: step again and the
  /// instruction runs as if nothing were pending) or raises the error interrupt (IRQ 13 on a
  /// PC) and waits for an interrupt as after HLT; the handler returns to the instruction.
  case floatingPointError
  /// An exception while delivering a double fault (or an undeliverable exception).
  case tripleFault
  /// An exception raised with `reportExceptions` set (or one the model cannot deliver yet);
  /// the state is as before the faulting instruction.
  case exception(vector: UInt8, errorCode: UInt32?)
  /// VMCALL/VMMCALL retired (CPL 0; #UD elsewhere and in the flat-user oracle mode). The
  /// hypercall number and arguments are in the registers (the `interp` engine reads RAX, then
  /// RDI, RSI, RDX, R10, R8, R9); the embedder writes any result into the registers itself.
  case hypercall
  /// A MOV to CR8 retired that set the task priority below `CPU.taskPriorityThreshold`: an
  /// interrupt the embedder's local APIC held back may be deliverable now.
  case taskPriorityLowered
  /// `run(budget:)` retired its budget.
  case budgetExhausted
  /// CPUID for a leaf the model does not answer itself (unused by the built-in model).
  case cpuid(leaf: UInt32, subleaf: UInt32)
  /// RDMSR of an MSR in `CPU.trappedMSRReads`: answer with `complete(value:)` or `completeWithFault`.
  case msrRead(index: UInt32)
  /// WRMSR of an MSR in `CPU.trappedMSRWrites`: perform it, then `complete(value:)` (or fault).
  case msrWrite(index: UInt32, value: UInt64)
  /// RDTSC/RDTSCP with `CPUTraps.rdtsc`: answer with the counter via `complete(value:)`.
  case rdtsc
  /// INVLPG with `CPUTraps.invlpg` (the model still invalidates its own TLB on re-execution).
  case invlpg(address: UInt64)
  /// The model reached something it does not implement (never a guest-visible exception).
  case internalError(String)
}

/// The typed error of the execution path: an architectural exception or a reason to stop.
public enum Fault: Error, Sendable, Equatable {
  /// An x86 exception (#DE=0, #UD=6, #GP=13, #SS=12, #PF=14, #AC=17 ...).
  case exception(vector: UInt8, errorCode: UInt32?)
  /// The instruction needs the embedder (I/O, MMIO); it re-executes afterwards.
  case event(CPUEvent)

  static let divideError = Fault.exception(vector: 0, errorCode: nil)
  static let invalidOpcode = Fault.exception(vector: 6, errorCode: nil)
  static func generalProtection(_ code: UInt32 = 0) -> Fault { .exception(vector: 13, errorCode: code) }
  static func stackFault(_ code: UInt32 = 0) -> Fault { .exception(vector: 12, errorCode: code) }
}
