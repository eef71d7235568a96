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
  if Platform.isParavirtual { Console.write(" platform=paravirtual cpus=1") }
  Console.newline()

  FrameAllocator.initialize()
  InterruptDescriptorTable.initialize()
  SMP.initializeBootProcessor()  // its per-CPU page, TSS, GDT, IDT
  SystemCallMSRs.initialize()
  UserText.expose()
  TLBShootdown.initialize()
  SMPSelfTest.initialize()
  SMPBenchmarks.initialize()
  Scheduler.initialize()
  Platform.initializeInterruptController()
  Timer.start(hertz: options.timerHertz)
  Timer.calibrate()
  ClockPage.publish(timestampFrequency: Timer.timestampFrequency, timerHertz: Timer.hertz)
  SMP.startApplicationProcessors(timerHertz: Timer.hertz)

  if options.privilegedProbe { cpu_cli() }
  let status: Int
  switch options.mode {
  case .selftest: status = SelfTest.run(injectFailure: options.injectFailure)
  case .bench:
    status = BenchmarkSuite.run(
      scale: options.scale, multiprocessor: options.multiprocessorBenchmarks, only: options.onlyBenchmark)
  }
  if Paravirt.active { Paravirt.reportRunstate() }  // its steal time
  Console.write("trivisor-kernel: exit status ")
  Console.write(decimal: status)
  Console.newline()
  Platform.powerOff(status: status)
}
