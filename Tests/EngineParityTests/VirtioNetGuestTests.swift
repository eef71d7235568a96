import Interpreter
import KVMEngine
import TestHostSupport
import Testing
import Translator
import VMM

/// A guest's own virtio-net driver on the user network, on every engine: 64-bit ring-0 code
/// (`InlineGuestAssembler`) enables the card's memory decoding and MSI-X through PCI configuration
/// space, initializes the device (features MAC, STATUS, VERSION_1), sets up the receive and
/// transmit queues the test laid out in memory, sends the ARP request for 10.0.2.2 the test put
/// in its transmit buffer, and halts with interrupts on until the receive queue's MSI-X interrupt
/// says a frame came. The frame travels from libslirp's thread through the card's inbox, wakes the
/// halted vCPU, lands in the guest's buffer and raises the interrupt: the whole path of a run.
@Suite struct VirtioNetGuestTests {
  /// Where the test lays out the queues and buffers (guest-physical).
  enum Layout {
    static let receiveDescriptors: UInt64 = 0x20_0000
    static let receiveAvailable: UInt64 = 0x20_1000
    static let receiveUsed: UInt64 = 0x20_2000
    static let transmitDescriptors: UInt64 = 0x20_3000
    static let transmitAvailable: UInt64 = 0x20_4000
    static let transmitUsed: UInt64 = 0x20_5000
    static let receiveBuffers: UInt64 = 0x21_0000
    static let transmitBuffer: UInt64 = 0x22_0000
    static let queueSize: UInt16 = 16
    static let bufferLength: UInt32 = 2048
    /// The card's MAC address (the default) and the virtio-net header's length.
    static let mac: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
    static let headerLength = 12
  }

  /// The guest: BAR 0 of PCI 00:02.0 preset at 0xFE000000, the receive queue's MSI-X vector 0 sent
  /// to APIC 0 as interrupt 0x40. Exits 0 when the interrupt came and a buffer was used, 1 when
  /// FEATURES_OK did not stick, 2 when the card has no MSI-X capability, 3 when the interrupt came
  /// without a used buffer.
  static let guest = #"""
    .set IDT, 0xF000
    .set BAR, 0xFE000000
    .set PCI_ADDRESS, 0x80001000
    .macro PCI_SELECT offset
      movl $(PCI_ADDRESS + \offset), %eax
      movw $0xCF8, %dx
      outl %eax, %dx
      movw $0xCFC, %dx
    .endm
    .macro EXIT value
      movb $\value, %al
      outb %al, $0xF4
    .Lhalt\@:
      hlt
      jmp .Lhalt\@
    .endm
    .text
    .code64
    .globl _start
    _start:
      lidt idtr(%rip)
      movl $rx_interrupt, %eax
      movw %ax, IDT + 0x40 * 16
      movw $0x08, IDT + 0x40 * 16 + 2
      movw $0x8E00, IDT + 0x40 * 16 + 4
      shrl $16, %eax
      movw %ax, IDT + 0x40 * 16 + 6
      movq $0, IDT + 0x40 * 16 + 8
      movl $0xFEE000F0, %edi          # local APIC on: spurious vector register
      movl $0x1FF, (%rdi)
      PCI_SELECT 0x04                 # command: memory space and bus master
      movl $6, %eax
      outl %eax, %dx
      PCI_SELECT 0x34                 # walk the capabilities to MSI-X (ID 0x11)
      inl %dx, %eax
      movzbl %al, %esi
    find_msix:
      testl %esi, %esi
      jz no_msix
      movl $PCI_ADDRESS, %eax
      orl %esi, %eax
      movw $0xCF8, %dx
      outl %eax, %dx
      movw $0xCFC, %dx
      inl %dx, %eax
      cmpb $0x11, %al
      je found_msix
      movzbl %ah, %esi
      jmp find_msix
    found_msix:
      orl $0x80000000, %eax           # message control: MSI-X enable
      outl %eax, %dx
      movl $BAR, %ebx
      movl $0xFEE00000, 0x4000(%rbx)  # table entry 0: APIC 0, vector 0x40, unmasked
      movl $0, 0x4004(%rbx)
      movl $0x40, 0x4008(%rbx)
      movl $0, 0x400C(%rbx)
      movb $0, 0x14(%rbx)             # reset, ACKNOWLEDGE, DRIVER
      movb $1, 0x14(%rbx)
      movb $3, 0x14(%rbx)
      movl $0, 0x08(%rbx)             # features 0-31: MAC, STATUS
      movl $0x10020, 0x0C(%rbx)
      movl $1, 0x08(%rbx)             # features 32-63: VERSION_1
      movl $1, 0x0C(%rbx)
      movb $0xB, 0x14(%rbx)           # FEATURES_OK
      testb $8, 0x14(%rbx)
      jnz features_ok
      EXIT 1
    features_ok:
      movw $0xFFFF, 0x10(%rbx)        # no configuration-change vector
      movw $0, 0x16(%rbx)             # queue 0 (receive): vector 0
      movw $16, 0x18(%rbx)
      movw $0, 0x1A(%rbx)
      movq $0x200000, %rax
      movq %rax, 0x20(%rbx)
      movq $0x201000, %rax
      movq %rax, 0x28(%rbx)
      movq $0x202000, %rax
      movq %rax, 0x30(%rbx)
      movw $1, 0x1C(%rbx)
      movw $1, 0x16(%rbx)             # queue 1 (transmit): no vector
      movw $16, 0x18(%rbx)
      movw $0xFFFF, 0x1A(%rbx)
      movq $0x203000, %rax
      movq %rax, 0x20(%rbx)
      movq $0x204000, %rax
      movq %rax, 0x28(%rbx)
      movq $0x205000, %rax
      movq %rax, 0x30(%rbx)
      movw $1, 0x1C(%rbx)
      movb $0xF, 0x14(%rbx)           # DRIVER_OK
      movw $0, 0x3000(%rbx)           # notify the receive queue: buffers posted
      movw $1, 0x3004(%rbx)           # notify the transmit queue: the ARP request
    wait:                             # until the receive queue's interrupt came
      cli
      cmpl $0, interrupts(%rip)
      jne received
      sti
      hlt
      jmp wait
    received:
      cmpw $0, 0x202002               # and the used index says a buffer was filled
      je no_frame
      EXIT 0
    no_frame:
      EXIT 3
    no_msix:
      EXIT 2
    rx_interrupt:
      incl interrupts(%rip)
      movl $0xFEE000B0, %edi          # EOI
      movl $0, (%rdi)
      iretq
    idtr:
      .word 0xFFF
      .quad IDT
    .globl interrupts
    interrupts:
      .long 0
    """#

  struct Run {
    let outcome: RunOutcome
    let memory: GuestMemory
  }

  static func run(on engine: any Engine) throws -> Run {
    let image = try InlineGuestAssembler.assemble(guest)
    let memory = try GuestMemory(ramSize: 16 << 20)
    try memory.write(0x10000, bytes: image)
    try layOut(memory)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    let network = try UserNetwork()
    defer { network.shutdown() }
    var configuration = MachineConfiguration(timeoutSeconds: 60)  // the watchdog
    configuration.firmwareConfigurationDevice = false
    configuration.network = network
    let machine = try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
    let outcome = machine.run()
    print(
      "virtio-net guest on \(engine.name): \(outcome.reason.description), \(outcome.statistics.totalExits) exits "
        + "(\(outcome.statistics.reasons.map { "\($0.reason) \($0.count)" }.joined(separator: ", ")))")
    return Run(outcome: outcome, memory: memory)
  }

  /// The rings and buffers a driver would set up: 16 receive buffers posted, one transmit chain
  /// holding a header and an ARP request for 10.0.2.2.
  static func layOut(_ memory: GuestMemory) throws {
    for i in 0..<Layout.queueSize {
      let d = Layout.receiveDescriptors + 16 * UInt64(i)
      try memory.write(Layout.receiveBuffers + UInt64(i) * UInt64(Layout.bufferLength), at: d)
      try memory.write(Layout.bufferLength, at: d + 8)
      try memory.write(UInt16(2), at: d + 12)  // device writes
      try memory.write(i, at: Layout.receiveAvailable + 4 + 2 * UInt64(i))
    }
    try memory.write(Layout.queueSize, at: Layout.receiveAvailable + 2)
    let mac = Layout.mac
    let request =
      [UInt8](repeating: 0, count: Layout.headerLength)
      + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + mac + [0x08, 0x06]
      + [0, 1, 0x08, 0x00, 6, 4, 0, 1] + mac + UserNetworkAddresses.guest.bytes
      + [0, 0, 0, 0, 0, 0] + UserNetworkAddresses.host.bytes
    try memory.write(Layout.transmitBuffer, bytes: request)
    try memory.write(Layout.transmitBuffer, at: Layout.transmitDescriptors)
    try memory.write(UInt32(request.count), at: Layout.transmitDescriptors + 8)
    try memory.write(UInt16(0), at: Layout.transmitDescriptors + 12)
    try memory.write(UInt16(0), at: Layout.transmitAvailable + 4)
    try memory.write(UInt16(1), at: Layout.transmitAvailable + 2)
  }

  /// The checks every engine must pass.
  static func expectARPReplyDelivered(_ run: Run) throws {
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    let used = try run.memory.read(UInt16.self, at: Layout.receiveUsed + 2)
    #expect(used >= 1)
    let id = try run.memory.read(UInt32.self, at: Layout.receiveUsed + 4)
    let length = try run.memory.read(UInt32.self, at: Layout.receiveUsed + 8)
    #expect(id < UInt32(Layout.queueSize) && length >= 12 + 42)
    let buffer = Layout.receiveBuffers + UInt64(id % UInt32(Layout.queueSize)) * UInt64(Layout.bufferLength)
    let frame = try run.memory.read(buffer + 12, count: 42)
    #expect(Array(frame[0..<6]) == Layout.mac, "to the guest's MAC")
    #expect(Array(frame[12..<14]) == [0x08, 0x06] && Array(frame[20..<22]) == [0, 2], "an ARP reply")
    #expect(Array(frame[28..<32]) == UserNetworkAddresses.host.bytes, "from 10.0.2.2")
    #expect(try run.memory.read(UInt16.self, at: Layout.transmitUsed + 2) == 1, "the request was sent")
    let traffic = try #require(run.outcome.statistics.network)
    #expect(traffic.framesSent == 1 && traffic.framesReceived >= 1)
  }

  @Test(.requires(.guestToolchain)) func theInterpreterGuestGetsItsARPReply() throws {
    try Self.expectARPReplyDelivered(try Self.run(on: InterpreterEngine()))
  }

  @Test(.requires(.guestToolchain)) func theTranslatorGuestGetsItsARPReply() throws {
    try Self.expectARPReplyDelivered(try Self.run(on: TranslatorEngine()))
  }

  @Test(.requires(.guestToolchain, .kvm)) func theKVMGuestGetsItsARPReply() throws {
    try Self.expectARPReplyDelivered(try Self.run(on: try KVMEngine()))
  }
}
