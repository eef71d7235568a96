/// The registers every kernel entry saves (Arch/traps.S), lowest address first.
struct TrapFrame {
  var r15: UInt64
  var r14: UInt64
  var r13: UInt64
  var r12: UInt64
  var r11: UInt64
  var r10: UInt64
  var r9: UInt64
  var r8: UInt64
  var rbp: UInt64
  var rdi: UInt64
  var rsi: UInt64
  var rdx: UInt64
  var rcx: UInt64
  var rbx: UInt64
  var rax: UInt64
  /// 0...255, or 256 for a system call.
  var vector: UInt64
  var errorCode: UInt64
  var rip: UInt64
  var cs: UInt64
  var rflags: UInt64
  var rsp: UInt64
  var ss: UInt64

  static let size = 22 * 8

  var fromUserMode: Bool { cs & 3 == 3 }

  /// The frame a new task starts from: ring 3 at `user_start`, interrupts on.
  static func newTask(program: Int, argument: Int) -> TrapFrame {
    TrapFrame(
      r15: 0, r14: 0, r13: 0, r12: 0, r11: 0, r10: 0, r9: 0, r8: 0, rbp: 0,
      rdi: UInt64(program), rsi: UInt64(bitPattern: Int64(argument)), rdx: 0, rcx: 0, rbx: 0, rax: 0,
      vector: 0, errorCode: 0, rip: KernelLayout.userStart, cs: UInt64(Selector.userCode), rflags: 0x202,
      rsp: UserWindow.stackTop, ss: UInt64(Selector.userData))
  }
}
