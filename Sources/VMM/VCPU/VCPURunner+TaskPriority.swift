/// CR8 is the local APIC's TPR (SDM vol. 3, "Task Priority in IA-32e Mode"): CR8[3:0] is TPR[7:4],
/// and a write to either is seen through the other. With the VMM's interrupt controllers the vCPU
/// keeps CR8 (the engine's own register, so a MOV to CR8 needs no exit) and the runner carries the
/// value over: after every exit a changed CR8 goes to the APIC (`takeTaskPriority`), before the
/// exit is handled, so a TPR or PPR read, HLT's wait and the next delivery see it; after the VMM
/// wrote the APIC for the guest (the TPR through the page or MSR 808H, or anything that resets
/// it) a changed TPR goes to CR8 (`giveTaskPriority`). The APIC's processor priority therefore
/// gates its fixed interrupts by CR8 on every engine; the 8259's interrupts (ExtINT, through LINT0
/// or an I/O APIC ExtINT entry) and NMIs do not pass the APIC's priority logic and are not gated.
///
/// A MOV to CR8 that lowers it below the class of a vector the TPR holds back must let that vector
/// in before the next instruction. Before every entry the runner hands the vCPU the APIC's
/// `taskPriorityThreshold` (VMX's TPR threshold): the engine ends `run` with `.interruptWindow`
/// when the guest sets CR8 below it, and the loop then delivers the vector.
extension VCPURunner {
  /// The guest's CR8 into the APIC's TPR, when it changed since the runner last carried it over.
  func takeTaskPriority() {
    let cr8 = vcpu.taskPriority
    guard cr8 != taskPrioritySeen else { return }
    taskPrioritySeen = cr8
    lapic.taskPriorityClass = cr8
  }

  /// The APIC's TPR into the guest's CR8, when a register write changed it.
  func giveTaskPriority() {
    let tpr = lapic.taskPriorityClass
    guard tpr != taskPrioritySeen else { return }
    taskPrioritySeen = tpr
    vcpu.taskPriority = tpr
  }

  /// The vCPU's state was loaded or reset (boot state, INIT, start-up): its CR8 is what counts,
  /// and the APIC takes it at once.
  func reloadTaskPriority() {
    taskPrioritySeen = nil
    takeTaskPriority()
  }

  /// Gives the vCPU the APIC's task-priority threshold (when it changed).
  func armTaskPriorityThreshold() {
    let threshold = lapic.taskPriorityThreshold
    guard threshold != taskPriorityThresholdArmed else { return }
    taskPriorityThresholdArmed = threshold
    vcpu.taskPriorityThreshold = threshold
  }
}
