// Expected output of the corpus guests in guests/corpus, as the architecture (and interp) gives it.

extension CorpusGuest {
  /// The corpus, in guests/corpus.
  static let all: [CorpusGuest] = [
    paging, exceptions, privilege, syscallSysret, timer, ioAndMMIO, tripleFault, translation,
  ]
}

extension CorpusGuest {
  /// guests/corpus/paging.S
  static let paging = CorpusGuest(
    name: "paging",
    expectedOutput: """
      own tables loaded
      A/D before: 0
      A/D after read: 20
      A/D after write: 60
      value read: 55
      read not present: exc e err 0 cr2 203000 rip ok
      mapped, read: cd
      unmapped again: exc e err 0 cr2 203000 rip ok
      read-only page reads: ab
      write read-only, WP=1: exc e err 3 cr2 201000 rip ok
      write with WP=0 stored: 77
      fetch from NX page: exc e err 11 cr2 204000 rip ok
      after clearing NX the call returns
      ring 3 reads supervisor page: exc e err 5 cr2 202000 rip ok cpl 3
      ring 3 writes user page: stored 99
      0x205000 reads: 1111
      remapped + invlpg reads: 2222

      """,
    expectedStatus: 0, expectedReason: "guest powered off",
    expectedDeviceLog: [],
    knownKVMDifference: nil)
}

extension CorpusGuest {
  /// guests/corpus/exceptions.S
  static let exceptions = CorpusGuest(
    name: "exceptions",
    expectedOutput: """
      selector beyond GDT limit: exc d err 48 rip ok
      not-present data segment: exc b err 38 rip ok
      not-present stack segment: exc c err 38 rip ok
      non-canonical address: exc d err 0 rip ok
      ud2: exc 6 rip ok
      divide by zero: exc 0 rip ok
      ring 3 int 0x80 through a DPL 3 gate:
      int 0x80 handler: cpl 3 rax 1234
        saved rsp 80000
      ring 3 saw rax after int 0x80: 600d
      ring 3 int 0x82 through a DPL 0 gate: exc d err 412 rip ok cpl 3
      int3: exc 3 rip ok

      """,
    expectedStatus: 33, expectedReason: "guest exit through isa-debug-exit: value 16, status 33",
    expectedDeviceLog: [],
    knownKVMDifference: KnownDifference(
      reason:
        "this host's kvm raises #UD (vector 6, frame RIP at the INT) for INT n executed in ring 3 instead of delivering it through the IDT: the DPL 3 int 0x80 gate never runs and the DPL 0 int 0x82 gate gives #UD instead of #GP(0x412); and it cannot emulate INT3 in ring 0 (KVM_EXIT_INTERNAL_ERROR, emulation failure, status 4 instead of 33). The host emulates ring-0 code instruction by instruction and gets software interrupts wrong; not a VMM fault",
      output: """
        selector beyond GDT limit: exc d err 48 rip ok
        not-present data segment: exc b err 38 rip ok
        not-present stack segment: exc c err 38 rip ok
        non-canonical address: exc d err 0 rip ok
        ud2: exc 6 rip ok
        divide by zero: exc 0 rip ok
        ring 3 int 0x80 through a DPL 3 gate:
        exc 6 rip 10a13 cpl 3
        ring 3 saw rax after int 0x80: 0
        ring 3 int 0x82 through a DPL 0 gate: exc 6 rip ok cpl 3

        """ + "int3:\u{20}",
      status: 4))
}

extension CorpusGuest {
  /// guests/corpus/privilege.S
  static let privilege = CorpusGuest(
    name: "privilege",
    expectedOutput: """
      cli: exc d err 0 rip ok cpl 3
        frame ends at 9f000
        saved rsp 80000
        saved ss 23
        saved cs 1b
      hlt: exc d err 0 rip ok cpl 3
      in: exc d err 0 rip ok cpl 3
      out: exc d err 0 rip ok cpl 3
      mov cr3: exc d err 0 rip ok cpl 3
      cli with RSP0 = 9e000: exc d err 0 rip ok cpl 3
        frame ends at 9e000
        saved rsp 80000
        saved ss 23
        saved cs 1b
      IOPL 3 out: 3
        ring 3 rflags 3002

      """,
    expectedStatus: 0, expectedReason: "guest powered off",
    expectedDeviceLog: [],
    knownKVMDifference: KnownDifference(
      reason:
        "on this host's kvm IRETQ to ring 3 with RFLAGS 0x3002 enters ring 3 with RFLAGS 0x202 (IOPL forced to 0, IF forced to 1), so the IOPL 3 OUT takes #GP(0); the host runs ring 3 natively under its own flags policy; not a VMM fault",
      output: """
        cli: exc d err 0 rip ok cpl 3
          frame ends at 9f000
          saved rsp 80000
          saved ss 23
          saved cs 1b
        hlt: exc d err 0 rip ok cpl 3
        in: exc d err 0 rip ok cpl 3
        out: exc d err 0 rip ok cpl 3
        mov cr3: exc d err 0 rip ok cpl 3
        cli with RSP0 = 9e000: exc d err 0 rip ok cpl 3
          frame ends at 9e000
          saved rsp 80000
          saved ss 23
          saved cs 1b
        IOPL 3 out: exc d err 0 rip 10854 cpl 3

          ring 3 rflags 202

        """,
      status: 0))
}

extension CorpusGuest {
  /// guests/corpus/syscall.S
  static let syscallSysret = CorpusGuest(
    name: "syscall",
    expectedOutput: """
      syscall from ring 3 with rax 5a5a, rdi 21, rflags 246
      entry: cs 8 ss 10 rcx ok r11 246
        rflags 2 rax 5a5a
      the entry read cs 8
      back in ring 3: rax 43
        rflags 246
        cs 43
        ss 3b

      """,
    expectedStatus: 0, expectedReason: "guest powered off",
    expectedDeviceLog: [],
    knownKVMDifference: KnownDifference(
      reason:
        "this host's kvm delivers SYSCALL without switching to ring 0: the entry runs with CS 0x33 at CPL 3 (the selector STAR would give for a 32-bit user CS, not 0x08), so its first OUT takes #GP(0) in ring 3 and SYSRETQ is never reached; the known host issue the reference kernel detects by a #PF on its supervisor-only entry page; not a VMM fault",
      output: """
        syscall from ring 3 with rax 5a5a, rdi 21, rflags 246
        exc d err 0 rip 10027 cpl 3
        the entry read cs 33
        back in ring 3: rax 0
          rflags 0
          cs 0
          ss 0

        """,
      status: 0))
}

extension CorpusGuest {
  /// guests/corpus/timer.S
  static let timer = CorpusGuest(
    name: "timer",
    expectedOutput: """
      ring 0: 5 ticks counted with hlt
      ring 3 busy loop ran until tick 10; preempted in ring 3 at least 3 times: yes

      """,
    expectedStatus: 0, expectedReason: "guest powered off",
    expectedDeviceLog: [],
    knownKVMDifference: nil)
}

extension CorpusGuest {
  /// guests/corpus/io_mmio.S
  static let ioAndMMIO = CorpusGuest(
    name: "io_mmio",
    expectedOutput: """
      unclaimed port, byte: ff
      unclaimed port, word: ffff
      unclaimed port, dword: ffffffff
      latch dword: deadbeef
      latch after byte write: 5a
      latch word: 1234
      rep outsb corpus, rep insb: suproc
      mmio dword: 12345678
      after add 5: 1234567d
      mmio byte: ee
      movsq ram to mmio: 1122334455667788
      movsq mmio to ram: cafef00d0badc0de
      id register: 54524956

      """,
    expectedStatus: 0, expectedReason: "guest powered off",
    expectedDeviceLog: [
      "out 510/4 = deadbeef",
      "in 510/4 = deadbeef",
      "out 510/1 = 5a",
      "in 510/4 = 5a",
      "out 510/2 = 1234",
      "in 510/2 = 1234",
      "out 518/1 = 63",
      "out 518/1 = 6f",
      "out 518/1 = 72",
      "out 518/1 = 70",
      "out 518/1 = 75",
      "out 518/1 = 73",
      "in 518/1 = 73",
      "in 518/1 = 75",
      "in 518/1 = 70",
      "in 518/1 = 72",
      "in 518/1 = 6f",
      "in 518/1 = 63",
      "write 0/4 = 12345678",
      "read 0/4 = 12345678",
      "read 0/4 = 12345678",
      "write 0/4 = 1234567d",
      "read 0/4 = 1234567d",
      "write 4/1 = ee",
      "read 4/1 = ee",
      "write 8/8 = 1122334455667788",
      "read 8/8 = 1122334455667788",
      "write 10/8 = cafef00d0badc0de",
      "read 10/8 = cafef00d0badc0de",
      "read ff8/8 = 54524956",
    ],
    knownKVMDifference: nil)
}

extension CorpusGuest {
  /// guests/corpus/triple_fault.S
  static let tripleFault = CorpusGuest(
    name: "triple_fault",
    expectedOutput: """
      loading an empty IDT, then ud2

      """,
    expectedStatus: 6, expectedReason: "shutdown(tripleFault)",
    expectedDeviceLog: [],
    knownKVMDifference: nil)
}

extension CorpusGuest {
  /// guests/corpus/translation.S
  static let translation = CorpusGuest(
    name: "translation",
    expectedOutput: """
      loop checksum: 36ba86a
      carries: 0
      carry across blocks: 1
      patched next instruction: 5
      before the patch: 7
      after the patch: 9
      fault mid-block: exc d err 0 rip ok
      r14 at the fault: 1133
      ring 3 loop: f2fe1ebe2c2cf9d
      indirect branches: 17fffffffffffa
      stack run: ffffeeccdd987744
      stack run across pages: ffffeebb99cc8922
      push memory, push rsp: 67890008
      direction flag set, clear: 10
      swapgs: aabbaa
      atomic updates: 6800010707
      constants: fffffffeffffffa1

      """,
    expectedStatus: 1, expectedReason: "guest exit through isa-debug-exit: value 0, status 1",
    expectedDeviceLog: [],
    knownKVMDifference: nil)
}
