import Interpreter
import TestHostSupport
import Testing
import Translator

@testable import VMM

/// Event channels seen by guests on the interpreter and the translator: a ring-0 64-bit kernel
/// installs the hypercall page (MSR 0x40000000 → 0x30000), registers its event callback with
/// `set_callbacks`, and takes upcalls through Xen's bounce frame. The shared info page sits at
/// 0xA000 (placed by the test, as `memory_op(add_to_physmap)` would). The upcall handler counts
/// entries (0x9010), ORs the pending word 0 it saw into 0x9040 and clears it, then re-enables
/// events and returns with IRETQ.
@Suite struct EventChannelGuestTests {
  static let sharedInfoFrame: UInt64 = 0xA

  static let common = #"""
    .set SI, 0xA000
    .set HYPERCALL_PAGE, 0x30000
    .macro HCALL n
      movq $(HYPERCALL_PAGE + \n * 32), %rax
      call *%rax
    .endm
    .macro SETUP
      movl $0x40000000, %ecx
      movl $HYPERCALL_PAGE, %eax
      xorl %edx, %edx
      wrmsr
      movq $upcall, %rdi
      xorl %esi, %esi
      xorl %edx, %edx
      HCALL 4
      movl %eax, 0x9080
    .endm
    # event_channel_op(cmd) on the structure at 0x9200
    .macro EVTCHN cmd
      movq $\cmd, %rdi
      movq $0x9200, %rsi
      HCALL 32
    .endm
    upcall:
      popq %rcx
      popq %r11
      pushq %rax
      movb $0, SI
      movq $0, SI + 8
      movq SI + 2048, %rax
      orq %rax, 0x9040
      movq $0, SI + 2048
      incl 0x9010
      popq %rax
      movb $0, SI + 1
      iretq
    """#

  /// Port masking and the upcall mask on one vCPU, then a timer upcall through set_timer_op and
  /// sched_op(block):
  /// 1. bind_ipi(0) → 0x9100; with the port masked in evtchn_mask and events enabled, send: no
  ///    upcall (0x9020 = count), evtchn_unmask: the upcall comes (0x9024 = count, 1).
  /// 2. events disabled (upcall mask 1), send: no upcall (0x9028); mask cleared by a store and an
  ///    xen_version call forces delivery as Linux's guests do (0x902C).
  /// 3. bind_virq(TIMER, 0) → 0x9104; set_timer_op(system time + 2 ms); block until the handler
  ///    saw the timer port (0x9040 has its bit); 0x9030 = the count. The loop checks with events
  ///    disabled and lets sched_op(block) enable them, which looks for a pending upcall at the
  ///    same time (Xen's idiom: no wake-up is lost between the check and the block).
  /// 4. vcpu_op(set_periodic_timer, 1 ms): STI; HLT until three more upcalls, then stop it.
  static let single =
    common + "\n" + #"""
      main:
        SETUP
        movl $0, 0x9200
        EVTCHN 7
        movl %eax, 0x9084
        movl 0x9204, %ebx
        movl %ebx, 0x9100
        btsq %rbx, SI + 2560
        movb $0, SI + 1
        movl %ebx, 0x9200
        EVTCHN 4
        movl $1000, %ecx
      spin1:
        pause
        loop spin1
        movl 0x9010, %eax
        movl %eax, 0x9020
        movl 0x9100, %ebx
        movl %ebx, 0x9200
        EVTCHN 9
        movl 0x9010, %eax
        movl %eax, 0x9024
        # 2: the upcall mask
        movb $1, SI + 1
        movl 0x9100, %ebx
        movl %ebx, 0x9200
        EVTCHN 4
        movl $1000, %ecx
      spin2:
        pause
        loop spin2
        movl 0x9010, %eax
        movl %eax, 0x9028
        movb $0, SI + 1
        cmpb $0, SI
        je no_force
        xorl %edi, %edi
        HCALL 17
      no_force:
        movl 0x9010, %eax
        movl %eax, 0x902C
        # 3: the timer
        movq $0, 0x9040
        movl $0, 0x9200
        movl $0, 0x9204
        EVTCHN 1
        movl 0x9208, %ebx
        movl %ebx, 0x9104
        movq SI + 48, %rdi
        addq $2000000, %rdi
        HCALL 15
      wait_timer:
        movb $1, SI + 1
        movl 0x9104, %ebx
        btq %rbx, 0x9040
        jc timer_done
        movq $1, %rdi
        xorl %esi, %esi
        HCALL 29
        jmp wait_timer
      timer_done:
        movb $0, SI + 1
        movl 0x9010, %eax
        movl %eax, 0x9030
        # 4: a periodic timer (1 ms) wakes HLT three times, then stops (a tick delivered just
        # before HLT loses no wake-up: the next tick ends the HLT)
        addl $3, %eax
        movl %eax, 0x9220
        movq $1000000, 0x9200
        movq $6, %rdi
        xorl %esi, %esi
        movq $0x9200, %rdx
        HCALL 24
        movl %eax, 0x9038
        sti
      wait_periodic:
        hlt
        movl 0x9010, %eax
        cmpl 0x9220, %eax
        jb wait_periodic
        cli
        movq $7, %rdi
        xorl %esi, %esi
        HCALL 24
        movl %eax, 0x903C
        EXIT
      """#

  static func checkSingle(_ engine: any Engine) throws {
    let run = try APICTestGuest.run(Self.single, on: engine) { machine in
      try machine.paravirt.placeSharedInfo(frame: Self.sharedInfoFrame)
    }
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x9080) == 0)  // set_callbacks
    #expect(try run.u32(0x9084) == 0)  // bind_ipi
    #expect(try run.u32(0x9100) == 1)
    #expect(try run.u32(0x9020) == 0)  // port masked: held
    #expect(try run.u32(0x9024) == 1)  // unmask raised it
    #expect(try run.u32(0x9028) == 1)  // upcall mask set: held
    #expect(try run.u32(0x902C) == 2)  // delivered once events were enabled
    #expect(try run.u32(0x9104) == 2)  // the timer's port
    #expect(try run.u32(0x9030) == 3)
    #expect(try run.u32(0x9038) == 0)  // set_periodic_timer
    #expect(try run.u32(0x903C) == 0)  // stop_periodic_timer
    #expect(try run.u32(0x9010) >= 6)
  }

  @Test(.requires(.guestToolchain)) func interpMaskingAndTimerUpcalls() throws {
    try Self.checkSingle(InterpreterEngine())
  }

  @Test(.requires(.guestToolchain)) func dbtMaskingAndTimerUpcalls() throws {
    try Self.checkSingle(TranslatorEngine())
  }

  /// An IPI between two vCPUs: the BSP binds an IPI port for itself (0x9100), starts the AP
  /// (INIT, SIPI, SIPI) and blocks, in test 3's race-free loop, until its handler ran. The AP (real mode, 32-bit calling
  /// convention through VMCALL) sends on that port and records the result (0x9108).
  static let ipi =
    common + "\n" + #"""
      main:
        SETUP
        movl $0, 0x9200
        EVTCHN 7
        movl 0x9204, %ebx
        movl %ebx, 0x9100
        movb $0, SI + 1
        movq $0xFEE00000, %rbx
        movl $0x1FF, 0xF0(%rbx)
        movl $0, 0x310(%rbx)
        movl $0xC4500, 0x300(%rbx)
        movl $0xC4620, 0x300(%rbx)
        movl $0xC4620, 0x300(%rbx)
      wait_ipi:
        movb $1, SI + 1
        cmpl $0, 0x9010
        jne got_ipi
        movq $1, %rdi
        xorl %esi, %esi
        HCALL 29
        jmp wait_ipi
      got_ipi:
        movb $0, SI + 1
        movl 0x9010, %eax
        movl %eax, 0x9030
        movl $1, 0x9034
      wait_ap:
        pause
        cmpl $0, 0x910C
        je wait_ap
        EXIT
      """# + "\n" + APICTestGuest.applicationProcessorEntry + "\n"
      + #"""
      ap_main:
        movl 0x9100, %eax
        movl %eax, 0x9300
        movl $32, %eax
        movl $4, %ebx
        movl $0x9300, %ecx
        vmcall
        movl %eax, 0x9108
        movl $1, 0x910C
        cli
      ap_idle:
        hlt
        jmp ap_idle
      """#

  static func checkIPI(_ engine: any Engine) throws {
    let run = try APICTestGuest.run(Self.ipi, cpus: 2, on: engine, presets: [0x9108: 0xFFFF_FFFF]) { machine in
      try machine.paravirt.placeSharedInfo(frame: Self.sharedInfoFrame)
    }
    #expect(run.outcome.reason == .debugExit(value: 0), "\(run.outcome.reason.description)")
    #expect(try run.u32(0x910C) == 1)  // the AP ran
    #expect(try run.u32(0x9108) == 0)  // the AP's send
    #expect(try run.u32(0x9030) >= 1)
    #expect(try run.u64(0x9040) == 1 << UInt64(try run.u32(0x9100)))
  }

  @Test(.requires(.guestToolchain)) func interpIPIBetweenTwoVCPUs() throws {
    try Self.checkIPI(InterpreterEngine())
  }

  @Test(.requires(.guestToolchain)) func dbtIPIBetweenTwoVCPUs() throws {
    try Self.checkIPI(TranslatorEngine())
  }
}
