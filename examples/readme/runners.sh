# three runners on one machine, sharing the store in $STATE (postgres://USER@HOST:PORT/DB);
# each reads the password from PGPASSWORD and the API key from OPENAI_API_KEY
batchkit runner --state "$STATE" --listen 127.0.0.1:24431 & a=$!
batchkit runner --state "$STATE" --listen 127.0.0.1:24432 & b=$!
batchkit runner --state "$STATE" --listen 127.0.0.1:24433 & c=$!

# from any machine that reaches the store: submit (prints the job's id), follow, collect
job=$(batchkit run requests.jsonl --max-requests 100 --state "$STATE" --detach)
batchkit jobs watch "$job" --state "$STATE"
batchkit jobs results "$job" --state "$STATE" --output results.jsonl

# SIGTERM: each runner hands over what it holds and exits 0
kill -TERM $a $b $c && wait $a $b $c
