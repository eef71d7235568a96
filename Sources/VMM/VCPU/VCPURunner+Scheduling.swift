import Scheduling

/// The runner under a shared pCPU pool (`MachineConfiguration.scheduling`): it holds one of the
/// pool's pCPUs while it runs guest code. Without a pool `holdsPCPU` stays false and none of this
/// runs.
extension VCPURunner {
  /// Waits for a pCPU before entering the guest. False when the wait was called off (a machine
  /// control request: the loop goes round to act on it first); a stopped pool lets the vCPU run
  /// without one.
  func acquirePCPU() -> Bool {
    guard let scheduling = machine.configuration.scheduling, index < scheduling.vcpus.count else { return true }
    let pool = scheduling.pool
    // A paravirtual guest sees the wait as steal time: RUNSTATE_runnable until the pCPU comes.
    let accounted = accountParavirtualRunstate(.runnable)
    if pool.acquire(scheduling.vcpus[index]) != nil {
      holdsPCPU = true
      if accounted { _ = accountParavirtualRunstate(.running) }
      return true
    }
    return pool.isStopped
  }

  /// Moves this vCPU's paravirtual runstate to `state` (its runstate area rewritten) when the
  /// guest uses the paravirtual ABI's shared info; false when it does not.
  private func accountParavirtualRunstate(_ state: Xen.RunState) -> Bool {
    machine.deviceLock.locked {
      let domain = machine.paravirt
      guard domain.events.sharedInfo != nil else { return false }
      domain.setRunState(index, state, HypercallCaller(index: index, vcpu: vcpu))
      return true
    }
  }

  /// Gives the pCPU back if this runner holds one: `blocking` when the vCPU stops wanting CPU
  /// (HLT, wait-for-SIPI, a pause, the end of the run), otherwise it stays runnable. A blocking
  /// release withdraws the vCPU even when the runner holds nothing: the pool may have dispatched
  /// it again since its last release (`PhysicalCPUPool.release`).
  func releasePCPU(blocking: Bool) {
    guard holdsPCPU || blocking, let scheduling = machine.configuration.scheduling,
      index < scheduling.vcpus.count
    else { return }
    holdsPCPU = false
    scheduling.pool.release(scheduling.vcpus[index], blocking: blocking)
  }

  /// After an exit: a vCPU the engine saw spinning yields (`yieldSpinning`); gives the pCPU back
  /// when the pool asks for it (slice over, preempted, yielded).
  func yieldPCPUIfAsked() {
    guard let scheduling = machine.configuration.scheduling else { return }
    let id = scheduling.vcpus[index]
    if vcpu.takePauseLoopExit() {
      scheduling.spinYields.increment()
      scheduling.pool.yieldSpinning(id)
    }
    if scheduling.pool.mustYield(id) {
      holdsPCPU = false
      scheduling.pool.release(id, blocking: false)
    }
  }

  /// At the start of the run: pause-loop exiting on (engines that can see PAUSE loops), and the
  /// thread bound to its host CPUs when the scheduling names some.
  func prepareScheduling() {
    guard let scheduling = machine.configuration.scheduling else { return }
    vcpu.setPauseLoopExiting(scheduling.pauseLoopPauses)
    guard scheduling.hostCPUs.indices.contains(index), let cpus = scheduling.hostCPUs[index] else { return }
    VCPUScheduling.bindCurrentThread(to: cpus)
  }
}

extension Machine {
  /// Connects the runners to the pool of `configuration.scheduling`: the pool kicks a vCPU to end
  /// its slice, and a control request (stop, pause, reset) calls off a runner's wait for a pCPU.
  func attachScheduling() {
    guard let scheduling = configuration.scheduling else { return }
    for runner in runners where runner.index < scheduling.vcpus.count {
      let id = scheduling.vcpus[runner.index]
      let kick = RunnerKick(runner)
      let pool = scheduling.pool
      pool.register(id) { kick.kick() }
      control.addKick { pool.interruptAcquire(id) }
    }
  }
}
