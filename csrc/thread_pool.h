// Parallel loops of the kernels. When the process has loaded an OpenMP
// runtime (PyTorch's), the loops run on its threads through the runtime's
// GOMP_parallel entry point, so the process keeps one set of threads and
// fcnnzoo never loads a second OpenMP runtime. Otherwise they run on a
// persistent pool of worker threads that sleep on a condition variable
// while idle.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace fcnnzoo {

// Processes the tasks [begin, end). worker is 0 for the calling thread and
// 1..thread_count-1 for pool threads, so callers can index per-worker scratch
// memory with it. The function must not throw.
using TaskRangeFunction = void (*)(void* context, int64_t begin, int64_t end, int worker);

class ThreadPool {
 public:
  // Upper bound on thread_count; larger requests are clamped to it.
  static constexpr int kMaxThreads = 256;

  // How long run() polls for the workers' last chunks before it sleeps.
  static constexpr int kMaxPollMicroseconds = 200;

  // The process-wide pool. A child process created by fork() gets a new,
  // empty pool, because the parent's threads do not exist in the child.
  static ThreadPool& instance();

  // Runs function over the tasks [0, task_count), handing out chunks of
  // chunk_size consecutive tasks, on up to thread_count threads including
  // the caller, and returns once every task is done: on the loaded OpenMP
  // runtime's threads if there is one, else on the pool. When another call
  // is using the pool, or threads cannot be started, the caller runs all
  // tasks.
  void run(int thread_count, int64_t task_count, int64_t chunk_size, TaskRangeFunction function, void* context);

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

 private:
  // One call of run(): the tasks [0, task_count) and who may take part.
  struct Job {
    TaskRangeFunction function;
    void* context;
    int64_t task_count;
    int64_t chunk_size;
    int participants;
    std::atomic<int64_t> next_task{0};
  };

  ThreadPool() = default;

  // Starts threads until the pool has at least thread_count of them. Returns
  // the number of threads, which is smaller only if the system refused one.
  int grow(int thread_count);
  void worker_loop(int worker, uint64_t seen_generation);
  static void process_chunks(Job& job, int worker);
  // Entry point of each OpenMP thread; data is a Job*.
  static void process_chunks_on_openmp_thread(void* data);

  // Set while a call owns the pool; a second caller runs its tasks inline.
  std::atomic<bool> busy_{false};

  std::mutex mutex_;
  std::condition_variable start_condition_;
  std::condition_variable done_condition_;
  std::vector<std::thread> threads_;

  // Guarded by mutex_. A worker woken by a new generation joins the job
  // only while job_open_ is set, and counts itself in joined_workers_ until
  // it has finished its chunks. run() closes the job once no task is left to
  // hand out and then waits for the joined workers only. A worker that wakes
  // late therefore never delays the caller and never touches a finished job.
  uint64_t generation_ = 0;
  Job* job_ = nullptr;
  bool job_open_ = false;
  // Changed under mutex_, but run() also polls it without the lock.
  std::atomic<int> joined_workers_{0};
};

}  // namespace fcnnzoo
