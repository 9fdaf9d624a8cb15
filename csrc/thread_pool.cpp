#include "thread_pool.h"

#include "openmp_runtime.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <exception>
#include <thread>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace fcnnzoo {
namespace {

std::atomic<ThreadPool*> g_pool{nullptr};

#if defined(__unix__) || defined(__APPLE__)
// The child of fork() contains a copy of the pool whose threads do not exist,
// so waiting on them would hang. Dropping the pointer leaks that copy on purpose:
// it cannot be destroyed safely, because its mutex may have been locked by a
// parent thread at the moment of the fork.
void forget_pool_in_child() { g_pool.store(nullptr, std::memory_order_relaxed); }
#endif

}  // namespace

ThreadPool& ThreadPool::instance() {
#if defined(__unix__) || defined(__APPLE__)
  static const int fork_handler_status = pthread_atfork(nullptr, nullptr, forget_pool_in_child);
  (void)fork_handler_status;
#endif

  ThreadPool* pool = g_pool.load(std::memory_order_acquire);
  if (pool != nullptr) {
    return *pool;
  }

  // The pool is never destroyed: its threads sleep until the process exits,
  // which avoids joining them during interpreter shutdown.
  ThreadPool* created = new ThreadPool();
  if (g_pool.compare_exchange_strong(pool, created, std::memory_order_acq_rel)) {
    return *created;
  }
  delete created;
  return *pool;
}

int ThreadPool::grow(int thread_count) {
  std::lock_guard<std::mutex> lock(mutex_);
  while (static_cast<int>(threads_.size()) < thread_count) {
    const int worker = static_cast<int>(threads_.size()) + 1;
    try {
      threads_.emplace_back(&ThreadPool::worker_loop, this, worker, generation_);
    } catch (const std::exception&) {
      // std::system_error when the system refuses a thread, std::bad_alloc
      // when the vector cannot grow: either way, run with fewer threads.
      break;
    }
  }
  return static_cast<int>(threads_.size());
}

void ThreadPool::worker_loop(int worker, uint64_t seen_generation) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    start_condition_.wait(lock, [&] { return generation_ != seen_generation; });
    seen_generation = generation_;
    if (!job_open_ || worker >= job_->participants) {
      continue;
    }
    Job* job = job_;
    joined_workers_.fetch_add(1, std::memory_order_relaxed);

    lock.unlock();
    process_chunks(*job, worker);
    lock.lock();

    if (joined_workers_.fetch_sub(1, std::memory_order_release) == 1) {
      done_condition_.notify_one();
    }
  }
}

void ThreadPool::process_chunks(Job& job, int worker) {
  for (;;) {
    const int64_t begin = job.next_task.fetch_add(job.chunk_size, std::memory_order_relaxed);
    if (begin >= job.task_count) {
      return;
    }
    const int64_t end = std::min(begin + job.chunk_size, job.task_count);
    job.function(job.context, begin, end, worker);
  }
}

void ThreadPool::process_chunks_on_openmp_thread(void* data) {
  Job& job = *static_cast<Job*>(data);
  process_chunks(job, loaded_openmp_runtime()->thread_number());
}

void ThreadPool::run(int thread_count, int64_t task_count, int64_t chunk_size, TaskRangeFunction function,
                     void* context) {
  if (task_count <= 0) {
    return;
  }
  chunk_size = std::max<int64_t>(chunk_size, 1);
  const int64_t chunk_count = (task_count + chunk_size - 1) / chunk_size;
  int participants = std::min(std::max(thread_count, 1), kMaxThreads);
  participants = static_cast<int>(std::min<int64_t>(participants, chunk_count));

  const OpenMpRuntime* openmp = participants > 1 ? loaded_openmp_runtime() : nullptr;
  if (openmp != nullptr) {
    // The team has at most participants threads, numbered from 0 with the
    // caller as 0, which matches the worker numbers of the pool.
    Job job;
    job.function = function;
    job.context = context;
    job.task_count = task_count;
    job.chunk_size = chunk_size;
    job.participants = participants;
    openmp->parallel(process_chunks_on_openmp_thread, &job, static_cast<unsigned>(participants), 0);
    return;
  }

  if (participants <= 1 || busy_.exchange(true, std::memory_order_acquire)) {
    function(context, 0, task_count, 0);
    return;
  }

  participants = std::min(participants, grow(participants - 1) + 1);
  if (participants <= 1) {
    busy_.store(false, std::memory_order_release);
    function(context, 0, task_count, 0);
    return;
  }

  Job job;
  job.function = function;
  job.context = context;
  job.task_count = task_count;
  job.chunk_size = chunk_size;
  job.participants = participants;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &job;
    job_open_ = true;
    generation_ += 1;
  }
  start_condition_.notify_all();

  process_chunks(job, 0);

  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_open_ = false;
  }
  // The joined workers are finishing their last chunk, usually within
  // microseconds, so poll for a short while before sleeping: waking a
  // sleeping thread is slow on virtual machines. On the 2-core KVM guest this
  // was developed on, polling cut a 16-image call of the Winograd kernel on
  // the 32-to-64-channel 13x13 layer from about 240 to 205 us.
  const auto poll_deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(kMaxPollMicroseconds);
  while (joined_workers_.load(std::memory_order_acquire) != 0 && std::chrono::steady_clock::now() < poll_deadline) {
    std::this_thread::yield();
  }
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_condition_.wait(lock, [&] { return joined_workers_.load(std::memory_order_acquire) == 0; });
    job_ = nullptr;
  }
  busy_.store(false, std::memory_order_release);
}

}  // namespace fcnnzoo
