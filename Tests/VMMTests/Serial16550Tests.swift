import Testing

@testable import VMM

@Suite struct Serial16550Tests {
  let base: UInt16 = 0x3F8
  let sink = RecordingSink()
  let out = OutputCollector()
  let uart: Serial16550

  init() {
    let out = self.out
    uart = Serial16550(irq: InterruptLine(sink: sink, line: 4), output: { out.append($0) })
  }

  func r(_ reg: UInt16) -> UInt8 { UInt8(uart.read(port: base + reg, size: 1)) }
  func w(_ reg: UInt16, _ v: UInt8) { uart.write(port: base + reg, size: 1, value: UInt32(v)) }

  @Test func transmitsToOutputAndReportsEmptyTransmitter() {
    for b in "hi\n".utf8 { w(0, b) }
    #expect(out.text == "hi\n")
    #expect(r(5) & 0x60 == 0x60)  // THRE | TEMT
    #expect(r(5) & 0x01 == 0)  // no data
  }

  @Test func divisorLatchIsSeparateFromDataAndIER() {
    w(3, 0x80)  // DLAB
    w(0, 0x01)
    w(1, 0x00)
    #expect(r(0) == 0x01 && r(1) == 0x00)
    #expect(uart.divisor == 1)
    w(3, 0x03)  // 8N1, DLAB off
    #expect(r(3) == 0x03)
    w(1, 0x05)
    #expect(r(1) == 0x05)
    #expect(out.bytes.isEmpty)  // the divisor write did not transmit
  }

  @Test func scratchRegisterHoldsAValue() {
    w(7, 0x5A)
    #expect(r(7) == 0x5A)
  }

  @Test func receivedDataRaisesTheInterruptUntilRead() {
    w(1, 0x01)  // RX data interrupt
    #expect(!sink.levels[4])
    #expect(r(2) & 0x0F == 0x01)  // nothing pending
    uart.receive([0x41, 0x42])
    #expect(sink.levels[4])
    #expect(r(5) & 0x01 == 1)
    #expect(r(2) & 0x0F == 0x04)
    #expect(r(0) == 0x41)
    #expect(sink.levels[4])  // still data
    #expect(r(0) == 0x42)
    #expect(!sink.levels[4])
    #expect(r(5) & 0x01 == 0)
  }

  @Test func thrEmptyInterruptClearsOnIIRReadAndRearmsOnWrite() {
    w(1, 0x02)  // enable THRE: THR is empty, so it fires
    #expect(sink.levels[4])
    #expect(r(2) & 0x0F == 0x02)  // reading IIR acknowledges it
    #expect(!sink.levels[4])
    #expect(r(2) & 0x0F == 0x01)
    w(0, 0x58)
    #expect(sink.levels[4])  // THR emptied again
    w(1, 0x00)
    #expect(!sink.levels[4])
  }

  @Test func receiveOutranksTHRE() {
    w(1, 0x03)
    uart.receive([1])
    #expect(r(2) & 0x0F == 0x04)
    _ = r(0)
    #expect(r(2) & 0x0F == 0x02)
  }

  @Test func fifoModeReportsFIFOBitsTriggerAndTimeout() {
    w(2, 0xC1)  // enable FIFOs, trigger 14
    #expect(r(2) & 0xC0 == 0xC0)
    w(1, 0x01)
    uart.receive(Array(repeating: 0x61, count: 3))
    #expect(r(2) & 0x0F == 0x0C)  // below trigger: character timeout
    uart.receive(Array(repeating: 0x62, count: 20))
    #expect(r(2) & 0x0F == 0x04)
    #expect(uart.pendingInputCount == 23)
    var got: [UInt8] = []
    while r(5) & 1 != 0 { got.append(r(0)) }
    #expect(got.count == 23)  // the backlog refilled the FIFO; nothing lost
    #expect(got.prefix(3) == [0x61, 0x61, 0x61])
    w(2, 0x00)
    #expect(r(2) & 0xC0 == 0)
  }

  @Test func fifoResetDropsReceivedBytes() {
    w(2, 0x01)
    uart.receive([1, 2, 3])
    w(2, 0x03)  // clear receive FIFO
    // The backlog refills from host input that had not reached the FIFO; here all of it had.
    #expect(r(5) & 1 == 0)
  }

  @Test func loopbackEchoesTransmitAndWiresModemLines() {
    w(4, 0x10 | 0x0F)  // loopback, DTR RTS OUT1 OUT2
    w(0, 0x99)
    #expect(out.bytes.isEmpty)
    #expect(r(5) & 1 == 1)
    #expect(r(0) == 0x99)
    #expect(r(6) & 0xF0 == 0xF0)
    w(4, 0x10)  // drop all outputs
    let msr = r(6)
    #expect(msr & 0xF0 == 0)
    #expect(msr & 0x0B == 0x0B)  // DCTS, DDSR, DDCD
    #expect(r(6) & 0x0F == 0)  // deltas clear on read
  }

  @Test func loopbackOverrunSetsAndClearsOE() {
    w(4, 0x10)
    w(0, 1)
    w(0, 2)  // no FIFO: one-byte holding register
    #expect(r(5) & 0x02 == 0x02)
    #expect(r(5) & 0x02 == 0)
    #expect(r(0) == 1)
  }

  @Test func lineStatusInterrupt() {
    w(1, 0x04)
    w(4, 0x10)
    w(0, 1)
    w(0, 2)
    #expect(sink.levels[4])
    #expect(r(2) & 0x0F == 0x06)
    _ = r(5)
    #expect(!sink.levels[4])
  }

  @Test func modemStatusInterrupt() {
    w(1, 0x08)
    w(4, 0x10)
    w(4, 0x11)  // DTR -> DSR changes
    #expect(sink.levels[4])
    #expect(r(2) & 0x0F == 0x00)
    _ = r(6)
    #expect(!sink.levels[4])
  }

  @Test func worksAtAnotherBaseAndWithoutIRQ() {
    let o = OutputCollector()
    let com2 = Serial16550(irq: nil, output: { o.append($0) })
    com2.write(port: 0x2F8, size: 1, value: 0x7A)
    com2.receive([9])
    #expect(o.bytes == [0x7A])
    #expect(com2.read(port: 0x2FD, size: 1) & 1 == 1)
    #expect(com2.read(port: 0x2F8, size: 1) == 9)
  }
}
