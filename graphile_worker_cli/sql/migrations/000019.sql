--! breaking
-- Step 19: nothing changes in the database. The step only marks a breaking boundary:
-- workers of earlier releases must stop once it is applied.

select 1;
