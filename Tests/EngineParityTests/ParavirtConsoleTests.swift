import Foundation
import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import Translator

@testable import VMM

/// Host console input for a deprivileged guest: what arrives before it binds VIRQ_CONSOLE waits
/// for `console_io(read)`; input arriving later raises VIRQ_CONSOLE, which ends the guest's
/// `sched_op(poll)` on that port; a read into a bad buffer is -EFAULT and loses nothing.
@Suite struct ParavirtConsoleTests {
  static let guest = ParavirtTestGuest.source(
    #"""
      // event_channel_op(bind_virq, {virq 2 (console), vcpu 0, port out})
      movl $2, 0x400(%rbp)
      movl $0, 0x404(%rbp)
      mov $1, %edi
      lea 0x400(%rbp), %rsi
      HCALL 32
      mov %rax, 0x08(%rbp)
      mov $1, %edi
      mov $64, %esi
      lea 0x100(%rbp), %rdx
      HCALL 18
      mov %rax, 0x10(%rbp)
      WRITE ready, ready_end
      // sched_op(poll, {ports, 1, no timeout})
      lea 0x408(%rbp), %rax
      mov %rax, 0x500(%rbp)
      movq $1, 0x508(%rbp)
      movq $0, 0x510(%rbp)
      mov $3, %edi
      lea 0x500(%rbp), %rsi
      HCALL 29
      mov %rax, 0x18(%rbp)
      mov $1, %edi
      mov $64, %esi
      movabs $0x100000000000, %rdx
      HCALL 18
      mov %rax, 0x20(%rbp)
      mov $1, %edi
      mov $64, %esi
      lea 0x200(%rbp), %rdx
      HCALL 18
      mov %rax, 0x28(%rbp)
      DONE
    ready:
      .ascii "READY\n"
    ready_end:
    """#,
    done: "PV-CONSOLE-DONE")

  final class InputOnReady: @unchecked Sendable {
    let lock = NSLock()
    var machine: Machine?
    var sent = false
    var text = ""
    func output(_ bytes: [UInt8]) {
      lock.lock()
      defer { lock.unlock() }
      text += String(decoding: bytes, as: UTF8.self)
      if !sent && text.contains("READY\n"), let machine {
        sent = true
        machine.input.push(Array("late!".utf8))
      }
    }
  }

  static func run(engine e: any Engine) throws {
    let feeder = InputOnReady()
    let (machine, memory) = try ParavirtTestGuest.boot(Self.guest, on: e) {
      $0.consoleCapture = { feeder.output($0) }
      $0.stopOnOutput = "PV-CONSOLE-DONE"
    }
    feeder.machine = machine
    machine.input.push(Array("early".utf8))
    let outcome = machine.run()
    feeder.machine = nil
    #expect(outcome.reason == .outputMatched("PV-CONSOLE-DONE"), "\(outcome.reason)")
    let results = ParavirtTestGuest.results
    let word = { (offset: UInt64) in try ParavirtTestGuest.word(memory, offset) }
    let text = { (offset: UInt64, count: Int) in
      String(decoding: try memory.read(results + offset, count: count), as: UTF8.self)
    }
    #expect(try word(0x08) == 0, "bind_virq")
    #expect(try memory.read(UInt32.self, at: results + 0x408) != 0, "a port")
    #expect(try word(0x10) == 5 && text(0x100, 5) == "early", "input from before the bind")
    #expect(try word(0x18) == 0, "poll ended by VIRQ_CONSOLE")
    #expect(try word(0x20) == Xen.Error.fault.returnValue, "a bad buffer")
    #expect(try word(0x28) == 5 && text(0x200, 5) == "late!", "input after the bind, kept across the fault")
  }

  @Test(.requires(.guestToolchain), arguments: ["interp", "dbt"])
  func consoleInputReachesTheDeprivilegedGuest(engine: String) throws {
    try Self.run(engine: engine == "dbt" ? TranslatorEngine() : InterpreterEngine())
  }

  @Test(.requires(.guestToolchain, .kvm)) func consoleInputReachesTheDeprivilegedGuestOnKVM() throws {
    try Self.run(engine: try KVMEngine())
  }
}
