import Foundation
import Interpreter
import Testing
import Translator
import VMM

/// Cross-modifying code between two vCPUs of the X86 model on their own threads, interpreted and
/// translated: vCPU 1 calls a function at 0x30000 (`mov eax, 1; ret`) until it returns 2; vCPU 0
/// first writes a data byte in the same page (so it holds a cached write pointer to it), waits
/// until vCPU 1 has run the function, then patches the immediate to 2. vCPU 1 must see the new
/// code (on dbt: its translation of the function, reached through linked blocks and the indirect
/// table, must go).
@Suite struct CrossModifyingCodeTests {
  static let executor: [UInt8] = [
    0x48, 0xC7, 0xC3, 0x00, 0x00, 0x03, 0x00,  // mov rbx, 0x30000
    0xFF, 0xD3,  // loop: call rbx
    0xC7, 0x04, 0x25, 0x00, 0x90, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,  // mov dword [0x9000], 1
    0x83, 0xF8, 0x02, 0x75, 0xEE,  // cmp eax, 2; jne loop
    0xE6, 0x10, 0xF4,  // out 0x10, al; hlt
  ]
  static let writer: [UInt8] = [
    0xC6, 0x04, 0x25, 0x00, 0x08, 0x03, 0x00, 0x00,  // mov byte [0x30800], 0
    0xF3, 0x90, 0x83, 0x3C, 0x25, 0x00, 0x90, 0x00, 0x00, 0x01, 0x75, 0xF4,  // wait: pause; cmp [0x9000], 1; jne
    0xC6, 0x04, 0x25, 0x01, 0x00, 0x03, 0x00, 0x02,  // mov byte [0x30001], 2
    0xE6, 0x11, 0xF4,  // out 0x11, al; hlt
  ]
  static let function: [UInt8] = [0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3]  // mov eax, 1; ret

  final class Box: @unchecked Sendable {
    let vcpu: InterpreterVirtualCPU
    var exit: VMExit?
    init(_ vcpu: InterpreterVirtualCPU) { self.vcpu = vcpu }
  }

  @Test(arguments: ["interp", "dbt"])
  func aPatchByOneVCPUIsExecutedByTheOther(engine: String) throws {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x20000, bytes: Self.writer)
    try memory.write(0x10000, bytes: Self.executor)
    try memory.write(0x30000, bytes: Self.function)
    let engines: [String: any Engine] = ["interp": InterpreterEngine(), "dbt": TranslatorEngine()]
    let vm = try #require(try engines[engine]!.createVM(memory: memory, options: EngineOptions()) as? InterpreterVM)
    var boxes: [Box] = []
    for (index, entry) in [(0, UInt64(0x20000)), (1, UInt64(0x10000))] {
      let boot = try SmallGuestBoot.prepare(memory: memory, entry: entry)
      let vcpu = try vm.createInterpreterVCPU(index: index)
      try vcpu.setSpecialRegisters(boot.specialRegisters)
      var regs = boot.registers
      regs.rsp -= UInt64(index) * 0x1000
      try vcpu.setRegisters(regs)
      boxes.append(Box(vcpu))
    }
    let group = DispatchGroup()
    for box in boxes {
      group.enter()
      Thread {
        defer { group.leave() }
        // Bounded: a stale decode would loop for ever.
        for _ in 0..<200 {
          guard let exit = try? box.vcpu.run(budget: 100_000) else { return }
          if exit != .budgetExhausted && exit != .kicked {
            box.exit = exit
            return
          }
        }
      }.start()
    }
    group.wait()
    #expect(boxes[0].exit == .io(PortAccess(port: 0x11, size: 1, isWrite: true, value: 0)))  // AL is 0 there
    #expect(boxes[1].exit == .io(PortAccess(port: 0x10, size: 1, isWrite: true, value: 2)))
  }
}
