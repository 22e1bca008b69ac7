/* A shared object that is not a plugin: no pb_pruner_entry. */
int no_entry_answer(void);

int no_entry_answer(void)
{
	return 42;
}
