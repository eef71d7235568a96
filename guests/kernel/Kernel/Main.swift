/// The kernel's Swift entry (from Arch/boot.S) with the command-line pointer, or 0.
@_cdecl("kmain")
func kmain(_ commandLine: UInt64) {
  // Parse first: the Multiboot command line lies just past the image, where nothing may write yet.
  let options = BootOptions.parse(address: commandLine)
  Console.initialize()
  Console.write("trivisor-kernel: mode=")
  Console.write(options.mode == .bench ? "bench" : "selftest")
  Console.write(" timer_hz=")
  Console.write(decimal: options.timerHertz)
  Console.newline()

  TaskStateSegment.initialize()
  InterruptDescriptorTable.initialize()
  Platform.loadDescriptorTables(
    gdtr: KernelLayout.gdtr, idtr: InterruptDescriptorTable.pseudoDescriptor(), taskRegister: Selector.taskState)
  SystemCallMSRs.initialize()
  UserText.expose()
  Scheduler.initialize()
  Platform.initializeInterruptController()
  Timer.start(hertz: options.timerHertz)
  Timer.calibrate()
  ClockPage.publish(timestampFrequency: Timer.timestampFrequency, timerHertz: Timer.hertz)

  let status: Int
  switch options.mode {
  case .selftest: status = SelfTest.run(injectFailure: options.injectFailure)
  case .bench: status = BenchmarkSuite.run(scale: options.scale)
  }
  Console.write("trivisor-kernel: exit status ")
  Console.write(decimal: status)
  Console.newline()
  Platform.powerOff(status: status)
}
