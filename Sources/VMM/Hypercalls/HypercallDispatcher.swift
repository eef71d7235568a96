/// The hypercall ABI, served by the VMM for every engine: an engine only reports that the guest
/// made a hypercall (`VMExit.hypercall`, with the instruction retired); the dispatcher reads the
/// number and arguments from the vCPU's registers by the calling convention of the guest's mode,
/// runs the handler registered for the number, and the runner carries out its `HypercallResult`.
///
/// Calling convention (Xen's, docs/paravirtualization.md): 64-bit code passes the number in RAX
/// and up to six arguments in RDI, RSI, RDX, R10, R8, R9; 32-bit (and 16-bit) code passes the
/// number in EAX and the arguments in EBX, ECX, EDX, ESI, EDI, EBP. A number with no handler
/// returns -ENOSYS. The paravirtual ABI (`ParavirtDomain`) registers its handlers here.
///
/// Threading: handlers run on the calling vCPU's runner thread under the machine lock.
/// Register handlers before `Machine.run()`.
public final class HypercallDispatcher {
  /// One decoded hypercall.
  public struct Call: Sendable, Equatable {
    /// The hypercall number.
    public var number: UInt64
    /// The six argument registers, in convention order (zero-extended from 32 bits in 32-bit code).
    public var arguments: [UInt64]
    /// True when the caller runs 64-bit code (results are 64-bit); false: 32-bit results.
    public var longMode: Bool

    /// A call of `number` with `arguments` from 64-bit (`longMode`) or 32-bit code.
    public init(number: UInt64, arguments: [UInt64], longMode: Bool) {
      self.number = number
      self.arguments = arguments
      self.longMode = longMode
    }
  }

  /// A hypercall implementation: gets the call and its caller, says what happens next.
  public typealias Handler = (_ call: Call, _ caller: HypercallCaller) throws(EngineError) -> HypercallResult

  /// -ENOSYS as the guest sees it: the answer to a number with no handler.
  public static let notImplemented = UInt64(bitPattern: -38)

  private var handlers: [UInt64: Handler] = [:]
  /// Runs before every call (the paravirtual ABI's caller checks and monitor traps): a result
  /// ends the call there, nil lets the handler run.
  var screen: ((_ call: Call, _ caller: HypercallCaller) throws(EngineError) -> HypercallResult?)?
  /// Hypercalls served so far, by number (unknown numbers included).
  public private(set) var counts: [UInt64: UInt64] = [:]

  /// A dispatcher with no handlers: every hypercall returns -ENOSYS.
  public init() {}

  /// Serves hypercall `number` with `handler` (replacing any earlier one).
  public func register(_ number: UInt64, _ handler: @escaping Handler) {
    handlers[number] = handler
  }

  /// The call the guest made, read from its registers by the calling convention of its mode
  /// (64-bit when EFER.LMA and CS.L are both set).
  public static func decode(registers r: Registers, special s: SpecialRegisters) -> Call {
    let longMode = s.efer & (1 << 10) != 0 && s.cs.l
    if longMode {
      return Call(number: r.rax, arguments: [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9], longMode: true)
    }
    let low = { (v: UInt64) in v & 0xFFFF_FFFF }
    return Call(
      number: low(r.rax), arguments: [r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp].map(low), longMode: false)
  }

  /// Runs `call` for `caller`; a `.value` is truncated to 32 bits for 32-bit callers.
  public func dispatch(_ call: Call, caller: HypercallCaller) throws(EngineError) -> HypercallResult {
    if let screen, let result = try screen(call, caller) { return result }
    counts[call.number, default: 0] &+= 1
    guard let handler = handlers[call.number] else { return .value(call.longMode ? Self.notImplemented : 0xFFFF_FFDA) }
    var result = try handler(call, caller)
    if !call.longMode, case .value(let v) = result { result = .value(v & 0xFFFF_FFFF) }
    if !call.longMode, case .block(let v) = result { result = .block(v & 0xFFFF_FFFF) }
    return result
  }
}

/// Who made a hypercall: the vCPU (for handlers that read or change its state, such as `iret`)
/// and its index in the machine.
public struct HypercallCaller {
  /// The calling vCPU's index (0 is the bootstrap processor).
  public let index: Int
  /// The calling vCPU, stopped at the hypercall (its registers show the call).
  public let vcpu: any VirtualCPU

  /// The caller `vcpu`, number `index` in its machine.
  public init(index: Int, vcpu: any VirtualCPU) {
    self.index = index
    self.vcpu = vcpu
  }
}

/// What the runner does after a hypercall handler returns.
public enum HypercallResult: Sendable, Equatable {
  /// The guest continues after the call with this value in RAX.
  case value(UInt64)
  /// RAX = the value, then the vCPU sleeps until an event is pending for it, a timer it set falls
  /// due, or the machine stops (`sched_op` block and poll).
  case block(UInt64)
  /// The handler set the vCPU's registers itself (`iret`): nothing more is written.
  case registersSet
  /// The guest asked to stop (`sched_op` shutdown).
  case shutdown(Xen.ShutdownReason)
}
